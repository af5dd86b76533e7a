#include "calib/measurement.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace rmai::calib {

const Measurement& find(const Entries& entries, const std::string& key) {
  for (const auto& e : entries)
    if (e.key == key) return e.m;
  throw std::logic_error("calibration: no entry " + key);
}

Measurement from_repeats(const std::vector<double>& per_repeat, std::string probe, std::string derivation) {
  Measurement m;
  m.repeats = summarize(per_repeat);
  m.value = m.repeats.median;
  m.probe = std::move(probe);
  m.derivation = std::move(derivation);
  return m;
}

Measurement from_fit(const SizeSweep& sweep, const std::function<double(const LineFit&)>& value, std::string probe,
                     std::string derivation) {
  Measurement m;
  m.fit = fit_medians(sweep);
  m.value = value(*m.fit);
  std::vector<double> per_repeat;
  for (const auto& fit : fit_each_repeat(sweep)) per_repeat.push_back(value(fit));
  m.repeats = summarize(per_repeat);
  m.probe = std::move(probe);
  m.derivation = std::move(derivation);
  return m;
}

std::string sizes_text(const std::vector<double>& sizes) {
  if (sizes.empty()) return "no sizes";
  return human(sizes.front(), Unit::Bytes) + ".." + human(sizes.back(), Unit::Bytes) + " (" + std::to_string(sizes.size()) +
         " sizes)";
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

namespace {

struct Scaled {
  double mantissa;
  const char* unit;       // as a comment shows it
  const char* yaml_unit;  // as config/units.hpp parses it
};

// The value in the largest unit that keeps 3 significant digits below 1000.
Scaled scale(double value, Unit unit) {
  // Below a picosecond a time is a rounding residue of subtractions (c0 - 2 x latency - ...): 0.
  if (unit == Unit::Time && std::fabs(value) < 1e-12) value = 0;
  struct Step {
    double factor;
    const char* unit;
    const char* yaml_unit;
  };
  static const Step time[] = {{1, "s", "s"}, {1e-3, "ms", "ms"}, {1e-6, "us", "us"}, {1e-9, "ns", "ns"}};
  static const Step bandwidth[] = {{1e9, "GB/s", "GBps"}, {1e6, "MB/s", "MBps"}, {1e3, "KB/s", "KBps"}, {1, "B/s", "Bps"}};
  static const Step bytes[] = {{1099511627776.0, "TiB", "TiB"}, {1073741824.0, "GiB", "GiB"}, {1048576.0, "MiB", "MiB"},
                               {1024.0, "KiB", "KiB"},          {1, "B", "B"}};
  const Step* steps = unit == Unit::Time ? time : unit == Unit::Bandwidth ? bandwidth : bytes;
  const std::size_t n = unit == Unit::Bytes ? 5 : 4;
  for (std::size_t i = 0; i + 1 < n; ++i)
    if (std::fabs(value) >= steps[i].factor * (unit == Unit::Bytes ? 1 : 0.9995))
      return {value / steps[i].factor, steps[i].unit, steps[i].yaml_unit};
  return {value / steps[n - 1].factor, steps[n - 1].unit, steps[n - 1].yaml_unit};
}

// 3 significant digits (4 for sizes, whose binary units leave e.g. 23.54 GiB), no exponent for the
// mantissas scale() leaves.
std::string digits(double mantissa, Unit unit) {
  char text[64];
  std::snprintf(text, sizeof text, unit == Unit::Bytes ? "%.4g" : "%.3g", mantissa);
  return text;
}

}  // namespace

std::string human(double value, Unit unit) {
  if (unit == Unit::Count) return yaml_value(value, unit);
  const Scaled s = scale(value, unit);
  return digits(s.mantissa, unit) + " " + s.unit;
}

std::string yaml_value(double value, Unit unit) {
  if (!std::isfinite(value)) throw std::invalid_argument("calibration: a value that is not finite");
  if (unit == Unit::Count) return std::to_string(static_cast<long long>(std::llround(value)));
  const Scaled s = scale(value, unit);
  return digits(s.mantissa, unit) + s.yaml_unit;
}

}  // namespace rmai::calib
