#pragma once
// Progress of a long command on stderr. On a terminal the status is one line rewritten in place at
// most every 0.5 s; elsewhere (a log file, CI) it is a plain line at most every 5 s, so that logs stay
// short. Lines that must stay (a stage starting, a point failing) go through note(). A replay can
// feed it through callback(): void(std::size_t done, std::size_t total).
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <iostream>
#include <string>

namespace rmai::cli {

// "1:05", "2:03:04".
std::string clock_text(double seconds);

class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  // `prefix` starts every line ("rmai validate").
  explicit Progress(std::string prefix, std::ostream& out = std::cerr, bool terminal = ::isatty(STDERR_FILENO));
  ~Progress() { end(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // A line that stays; on a terminal it replaces the status line, redrawn by the next status().
  void note(const std::string& line);
  // The status line, rate-limited (0.5 s on a terminal, 5 s elsewhere) unless `force`.
  void status(const std::string& text, bool force = false);
  // "done/total (p%), elapsed 0:12, ETA 0:30" as the status.
  void update(std::size_t done, std::size_t total);
  std::function<void(std::size_t, std::size_t)> callback() {
    return [this](std::size_t done, std::size_t total) { update(done, total); };
  }
  // Ends the status line on a terminal (the next output starts on a fresh line).
  void end();

  double elapsed_s() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  bool terminal() const { return terminal_; }

 private:
  std::string prefix_;
  std::ostream& out_;
  bool terminal_;
  bool drawn_ = false;  // the status line is on screen, unterminated
  bool shown_ = false;  // a status was shown at least once
  Clock::time_point start_, last_;
};

}  // namespace rmai::cli
