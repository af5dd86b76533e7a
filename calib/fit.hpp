#pragma once
// What repeated measurements become: the median and spread of the repeats, and straight-line fits
// of time against size (t = a + x * b) by least squares. `rmai calibrate` turns every probe into one
// of these (calib/probes.hpp) and writes both into the platform preset's comments.
#include <cstddef>
#include <span>
#include <vector>

namespace rmai::calib {

// The repeats of one measurement. Empty (count 0) for a value read once, such as a page size.
struct Summary {
  double median = 0, min = 0, max = 0;
  std::size_t count = 0;
};
// Throws std::invalid_argument for no values or a value that is not finite.
Summary summarize(std::span<const double> values);

// y = intercept + x * slope, fitted by relative least squares: each point is weighted by 1/y, so
// that the fit minimises relative errors. A time measured over sizes from 64 B to 4 MiB spans four
// decades; plain least squares would let the largest sizes decide the intercept (their absolute
// noise is larger than the intercept itself), while this lets the small sizes decide it and the
// large ones the slope.
struct LineFit {
  double intercept = 0, slope = 0;
  double rms_relative = 0;  // sqrt(mean(((fit - y) / y)^2)): the residual of the fit
  std::size_t points = 0;
};
// Throws std::invalid_argument for fewer than two distinct x, sizes that differ, or a y that is not
// positive and finite.
LineFit fit_line(std::span<const double> x, std::span<const double> y);

// Times measured at several sizes: times[i][r] at sizes[i] in repeat r (every size has the same
// number of repeats).
struct SizeSweep {
  std::vector<double> sizes;
  std::vector<std::vector<double>> times;
  std::size_t repeats() const { return times.empty() ? 0 : times.front().size(); }
};
// The fit of the per-size medians: what the preset's number comes from.
LineFit fit_medians(const SizeSweep& sweep);
// One fit per repeat: the spread of the fitted numbers.
std::vector<LineFit> fit_each_repeat(const SizeSweep& sweep);

// The median of `values` (copied, not reordered). Throws std::invalid_argument when empty.
double median(std::vector<double> values);

}  // namespace rmai::calib
