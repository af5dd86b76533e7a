#include "calib/preset.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace rmai::calib {
namespace {

constexpr std::size_t kWidth = 100;

// `text` as comment lines of at most kWidth columns: "# " + first, "#   " + the rest (a paragraph
// of the header: "# " each).
void comment(std::ostringstream& out, const std::string& indent, const std::string& text, bool hanging = true) {
  std::istringstream words(text);
  std::string line = indent + "# ", word;
  bool first_word = true;
  while (words >> word) {
    if (!first_word && line.size() + 1 + word.size() > kWidth) {
      out << line << "\n";
      line = indent + (hanging ? "#   " : "# ");
      first_word = true;
    }
    line += (first_word ? "" : " ") + word;
    first_word = false;
  }
  out << line << "\n";
}

std::string percent(double ratio) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2g%%", ratio * 100);
  return text;
}

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) out += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
  return out + "\"";
}

void entry(std::ostringstream& out, const std::string& indent, const Entry& e) {
  const Measurement& m = e.m;
  if (!std::isfinite(m.value) || m.value < 0)
    throw std::invalid_argument("calibration: " + e.key + " came out as " + std::to_string(m.value));
  comment(out, indent, "probe: " + m.probe);
  if (!m.derivation.empty()) comment(out, indent, "value: " + m.derivation);
  comment(out, indent, m.fit ? "fit: residual " + percent(m.fit->rms_relative) + " RMS relative over " +
                                   std::to_string(m.fit->points) + " per-size medians"
                             : std::string(m.repeats.count ? "fit: none (measured directly)" : "fit: none"));
  comment(out, indent, m.repeats.count == 0
                           ? std::string("repeats: none (read once)")
                           : "repeats: median " + human(m.repeats.median, e.unit) + ", spread " + human(m.repeats.min, e.unit) +
                                 " - " + human(m.repeats.max, e.unit) + " (min - max of " + std::to_string(m.repeats.count) + ")");
  out << indent << e.key << ": " << yaml_value(m.value, e.unit) << "\n";
}

}  // namespace

std::string render(const Preset& p) {
  std::ostringstream out;
  // Header paragraphs are wrapped; a line starting with two spaces (a command) is kept as it is.
  for (const auto& line : p.header) {
    if (line.empty() || line.starts_with("  "))
      out << (line.empty() ? "#" : "#" + line) << "\n";
    else
      comment(out, "", line, false);
  }
  out << "description: " << quoted(p.description) << "\n";
  for (const auto& e : p.top) {
    out << "\n";
    entry(out, "", e);
  }
  for (const auto& c : p.components) {
    out << "\n";
    std::istringstream lines(c.comment);
    for (std::string line; std::getline(lines, line);) comment(out, "", line);
    if (c.entries.empty()) {
      out << c.name << ": " << c.preset << "\n";
      continue;
    }
    out << c.name << ":\n";
    out << "  description: " << quoted(c.description) << "\n";
    for (const auto& e : c.entries) entry(out, "  ", e);
  }
  return out.str();
}

}  // namespace rmai::calib
