#pragma once
// One calibrated number and how it was found: what `rmai calibrate`'s probes (calib/probes.hpp)
// return and the platform preset (calib/preset.hpp) writes, value and comment.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "calib/fit.hpp"

namespace rmai::calib {

enum class Unit { Time, Bandwidth, Bytes, Count };

// One number of the platform preset and how it was found.
struct Measurement {
  double value = 0;            // SI units: what the preset says
  Summary repeats;             // the value as each repeat gave it (count 0: read once, exact)
  std::optional<LineFit> fit;  // when it comes from a fit of the per-size medians
  std::string probe;           // what was measured, and how
  std::string derivation;      // how the value follows from the probe and other numbers ("" when it is the probe's)
};

// A parameter of a platform component.
struct Entry {
  std::string key;
  Unit unit = Unit::Time;
  Measurement m;
};
using Entries = std::vector<Entry>;
// The entry `key` of `entries`; throws std::logic_error when it is missing (a bug).
const Measurement& find(const Entries& entries, const std::string& key);

// A number that is the median of its repeats (`per_repeat`, one value each).
Measurement from_repeats(const std::vector<double>& per_repeat, std::string probe, std::string derivation = "");
// A number that comes from a size sweep's fit: `value` of the fit of the per-size medians, and of
// each repeat's own fit for the spread.
Measurement from_fit(const SizeSweep& sweep, const std::function<double(const LineFit&)>& value, std::string probe,
                     std::string derivation = "");

// "64 B..4 MiB (9 sizes)"
std::string sizes_text(const std::vector<double>& sizes);

// Seconds on the steady clock (an arbitrary origin): differences time the probes.
double now_s();

// A value as the comments and progress lines show it, 3 significant digits: "12.3 us", "2.8 GB/s",
// "4 KiB".
std::string human(double value, Unit unit);
// The same as the preset writes it, in a form the configuration's units parse back: "12.3us",
// "2.8GBps", "4KiB" (config/units.hpp).
std::string yaml_value(double value, Unit unit);

}  // namespace rmai::calib
