#include "cli/progress.hpp"

#include <cmath>
#include <cstdio>

namespace rmai::cli {

std::string clock_text(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(text, sizeof text, "%ld:%02ld", s / 60, s % 60);
  return text;
}

Progress::Progress(std::string prefix, std::ostream& out, bool terminal)
    : prefix_(std::move(prefix)), out_(out), terminal_(terminal), start_(Clock::now()) {}

void Progress::note(const std::string& line) {
  if (drawn_) out_ << "\r\033[K";
  out_ << prefix_ << ": " << line << "\n" << std::flush;
  drawn_ = false;
}

void Progress::status(const std::string& text, bool force) {
  const auto now = Clock::now();
  const auto interval = terminal_ ? std::chrono::milliseconds(500) : std::chrono::milliseconds(5000);
  if (!force && shown_ && now - last_ < interval) return;
  last_ = now;
  shown_ = true;
  if (terminal_) {
    out_ << "\r" << prefix_ << ": " << text << "\033[K" << std::flush;
    drawn_ = true;
  } else {
    out_ << prefix_ << ": " << text << "\n" << std::flush;
  }
}

void Progress::update(std::size_t done, std::size_t total) {
  const double elapsed = elapsed_s();
  std::string text = std::to_string(done) + "/" + std::to_string(total);
  if (total > 0) text += " (" + std::to_string(done * 100 / total) + "%)";
  text += ", elapsed " + clock_text(elapsed);
  if (done > 0 && total >= done) text += ", ETA " + clock_text(elapsed * double(total - done) / double(done));
  status(text, done == total);
}

void Progress::end() {
  if (drawn_) out_ << "\n" << std::flush;
  drawn_ = false;
}

}  // namespace rmai::cli
