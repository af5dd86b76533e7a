// Synthetic decode traces: Zipf popularity per layer plus adjacent-token reuse.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>

#include "trace.hpp"

namespace rmai::traces {
namespace {

// std::mt19937_64 output is fixed by the standard, but the standard distributions (and
// std::shuffle) are not: numbers are made from raw bits here so a seed gives the same trace on
// every platform.
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;  // 53 random bits in [0, 1)
}

std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t n) {
  // Values at or above the last multiple of n are redrawn so every result is equally likely.
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t limit = kMax - kMax % n;
  for (;;)
    if (const std::uint64_t bits = rng(); bits < limit) return bits % n;
}

// Popularity of the experts of one layer.
struct Popularity {
  std::vector<double> weight;      // by expert id
  std::vector<double> cumulative;  // running sum of weight, by expert id
};

Popularity make_popularity(std::mt19937_64& rng, std::uint32_t experts, double exponent) {
  // A seeded permutation gives each rank an expert, so the popular expert differs by layer.
  std::vector<std::uint32_t> by_rank(experts);
  for (std::uint32_t i = 0; i < experts; ++i) by_rank[i] = i;
  for (std::uint32_t i = experts - 1; i > 0; --i)
    std::swap(by_rank[i], by_rank[uniform_below(rng, i + 1)]);  // Fisher-Yates
  Popularity popularity{std::vector<double>(experts), std::vector<double>(experts)};
  for (std::uint32_t rank = 0; rank < experts; ++rank)
    popularity.weight[by_rank[rank]] = std::pow(static_cast<double>(rank + 1), -exponent);
  double sum = 0;
  for (std::uint32_t expert = 0; expert < experts; ++expert)
    popularity.cumulative[expert] = sum += popularity.weight[expert];
  return popularity;
}

// One expert drawn from the popularity law restricted to the experts not in `taken`.
std::uint16_t draw(std::mt19937_64& rng, const Popularity& popularity,
                   std::span<const std::uint16_t> taken) {
  const auto is_taken = [&](std::size_t expert) {
    return std::find(taken.begin(), taken.end(), expert) != taken.end();
  };
  // Drawing from the whole law by bisection and redrawing taken experts samples the restricted
  // law exactly, and is fast while the taken experts hold little of the mass...
  const auto& cumulative = popularity.cumulative;
  for (int attempt = 0; attempt < 16; ++attempt) {
    const double x = uniform01(rng) * cumulative.back();
    std::size_t expert =
        std::upper_bound(cumulative.begin(), cumulative.end(), x) - cumulative.begin();
    expert = std::min(expert, cumulative.size() - 1);  // x may round up to the total
    if (!is_taken(expert)) return static_cast<std::uint16_t>(expert);
  }
  // ...and when they hold most of it, a scan of the experts left samples the same law.
  double left = 0;
  for (std::size_t expert = 0; expert < cumulative.size(); ++expert)
    if (!is_taken(expert)) left += popularity.weight[expert];
  double x = uniform01(rng) * left;
  std::size_t last = 0;
  for (std::size_t expert = 0; expert < cumulative.size(); ++expert) {
    if (is_taken(expert)) continue;
    last = expert;
    if (x < popularity.weight[expert]) break;
    x -= popularity.weight[expert];
  }
  return static_cast<std::uint16_t>(last);
}

}  // namespace

RoutingTrace generate_synthetic(TraceShape shape, const SyntheticParams& params) {
  RoutingTrace trace(shape);  // validates the shape
  if (!(params.reuse >= 0 && params.reuse <= 1))
    throw std::invalid_argument("synthetic trace: reuse must be in [0, 1]");
  if (!(params.zipf_exponent >= 0) || !std::isfinite(params.zipf_exponent))
    throw std::invalid_argument("synthetic trace: zipf exponent must be finite and >= 0");
  if (params.tokens > std::numeric_limits<std::uint32_t>::max())
    throw std::invalid_argument("synthetic trace: more than 2^32 - 1 tokens");

  std::mt19937_64 rng(params.seed);
  std::vector<Popularity> layers;
  for (std::uint32_t layer = 0; layer < shape.layers; ++layer)
    layers.push_back(make_popularity(rng, shape.experts, params.zipf_exponent));

  const std::size_t k = shape.top_k;
  Token token{0, 0, std::vector<std::uint16_t>(shape.layers * k), {}};
  std::vector<std::uint16_t> previous;
  for (std::uint64_t t = 0; t < params.tokens; ++t) {
    token.index = static_cast<std::uint32_t>(t);
    for (std::uint32_t layer = 0; layer < shape.layers; ++layer) {
      std::uint16_t* row = token.experts.data() + layer * k;
      std::size_t chosen = 0;
      if (t > 0)  // temporal locality: keep each expert of the previous token with prob. reuse
        for (std::size_t i = 0; i < k; ++i)
          if (uniform01(rng) < params.reuse) row[chosen++] = previous[layer * k + i];
      while (chosen < k) {
        row[chosen] = draw(rng, layers[layer], {row, chosen});
        ++chosen;
      }
      std::sort(row, row + k);
    }
    trace.append(token);
    previous = token.experts;
  }
  return trace;
}

}  // namespace rmai::traces
