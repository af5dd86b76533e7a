#include "calib/fit.hpp"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace rmai::calib {

double median(std::vector<double> values) {
  if (values.empty()) throw std::invalid_argument("median of no values");
  const std::size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid), values.end());
  const double upper = values[mid];
  if (values.size() % 2) return upper;
  return (upper + *std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid))) / 2;
}

Summary summarize(std::span<const double> values) {
  if (values.empty()) throw std::invalid_argument("a summary of no values");
  for (const double v : values)
    if (!std::isfinite(v)) throw std::invalid_argument("a measurement that is not finite");
  const auto [min, max] = std::minmax_element(values.begin(), values.end());
  return {median({values.begin(), values.end()}), *min, *max, values.size()};
}

LineFit fit_line(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size()) throw std::invalid_argument("fit_line: as many x as y are needed");
  const auto n = static_cast<Eigen::Index>(x.size());
  const auto [x_min, x_max] = std::minmax_element(x.begin(), x.end());
  if (n < 2 || *x_min == *x_max) throw std::invalid_argument("fit_line: at least two distinct x are needed");
  for (const double v : y)
    if (!(v > 0) || !std::isfinite(v)) throw std::invalid_argument("fit_line: every y must be positive and finite");
  // Rows scaled by 1/y (relative errors), columns scaled to unit norm so that the solver sees a
  // well-conditioned matrix whatever the units (x in bytes reaches 1e7, y in seconds 1e-7).
  Eigen::MatrixXd a(n, 2);
  Eigen::VectorXd b(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    a(i, 0) = 1 / y[i];
    a(i, 1) = x[i] / y[i];
    b(i) = 1;
  }
  const Eigen::Vector2d norms = a.colwise().norm();
  const Eigen::Vector2d solution = (a * norms.cwiseInverse().asDiagonal()).colPivHouseholderQr().solve(b);
  LineFit fit;
  fit.intercept = solution(0) / norms(0);
  fit.slope = solution(1) / norms(1);
  fit.points = x.size();
  double sum = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double relative = (fit.intercept + x[i] * fit.slope - y[i]) / y[i];
    sum += relative * relative;
  }
  fit.rms_relative = std::sqrt(sum / double(n));
  return fit;
}

LineFit fit_medians(const SizeSweep& sweep) {
  std::vector<double> medians;
  for (const auto& t : sweep.times) medians.push_back(median(t));
  return fit_line(sweep.sizes, medians);
}

std::vector<LineFit> fit_each_repeat(const SizeSweep& sweep) {
  std::vector<LineFit> fits;
  for (std::size_t r = 0; r < sweep.repeats(); ++r) {
    std::vector<double> times;
    for (const auto& t : sweep.times) times.push_back(t.at(r));
    fits.push_back(fit_line(sweep.sizes, times));
  }
  return fits;
}

}  // namespace rmai::calib
