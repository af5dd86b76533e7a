// Routing statistics (see stats.hpp).
#include "traces/stats.hpp"

#include <algorithm>
#include <cmath>

#include "config/errors.hpp"

namespace rmai::traces {

RoutingCounts::RoutingCounts(TraceShape shape, std::vector<std::uint32_t> windows)
    : shape_(shape),
      assignments_(Eigen::MatrixXd::Zero(shape.layers, shape.experts)),
      decode_assignments_(Eigen::MatrixXd::Zero(shape.layers, shape.experts)),
      reuse_sum_(Eigen::VectorXd::Zero(shape.layers)) {
  validate(shape);
  // Two dense experts x experts tables per pair of adjacent layers: fine for every real model (256
  // experts: 1 MiB per table), impossible for 65536; refused before allocating beyond the budget.
  const double pair_bytes = 2.0 * (shape.layers - 1) * double(shape.experts) * shape.experts * sizeof(double);
  if (pair_bytes > kPairTableBudget)
    throw InputError("trace statistics", "the cross-layer tables of " + std::to_string(shape.layers) + " layers x " +
                                             std::to_string(shape.experts) + " experts would take " +
                                             std::to_string(std::uint64_t(pair_bytes / (1 << 20))) +
                                             " MiB (at most " + std::to_string(kPairTableBudget >> 20) +
                                             " MiB): too many experts per layer");
  for (std::uint32_t l = 0; l + 1 < shape.layers; ++l) {
    top1_pairs_.push_back(Eigen::MatrixXd::Zero(shape.experts, shape.experts));
    rank_pairs_.push_back(Eigen::MatrixXd::Zero(shape.experts, shape.experts));
  }
  for (const std::uint32_t window : windows)
    if (window > 0) {
      working_sets_.push_back({window});
      seen_in_window_.emplace_back(std::size_t{shape.layers} * shape.experts, 0);
    }
}

void RoutingCounts::add(const Token& token) {
  const std::size_t k = shape_.top_k;
  const auto row = [&](std::uint32_t l) { return token.experts.data() + l * k; };
  for (std::uint32_t l = 0; l < shape_.layers; ++l) {
    for (std::size_t i = 0; i < k; ++i) assignments_(l, row(l)[i]) += 1;
    // Rows hold distinct experts (the readers check), so this counts tokens choosing each expert.
    if (token.phase == Phase::Decode)
      for (std::size_t i = 0; i < k; ++i) decode_assignments_(l, row(l)[i]) += 1;
    if (l + 1 < shape_.layers) {
      top1_pairs_[l](row(l)[0], row(l + 1)[0]) += 1;
      for (std::size_t i = 0; i < k; ++i) rank_pairs_[l](row(l)[i], row(l + 1)[i]) += 1;
    }
  }

  // Adjacent reuse: the fraction of this token's experts the sequence's previous token also chose.
  auto [previous, first] = previous_.try_emplace(token.seq);
  if (!first) {
    ++adjacent_pairs_;
    for (std::uint32_t l = 0; l < shape_.layers; ++l) {
      const std::uint16_t* before = previous->second.data() + l * k;
      std::size_t common = 0;
      for (std::size_t i = 0; i < k; ++i) common += std::find(before, before + k, row(l)[i]) != before + k;
      reuse_sum_[l] += double(common) / double(k);
    }
  }
  previous->second = token.experts;

  // Working sets over consecutive windows of the trace (in trace order, as a node replays it).
  for (std::size_t w = 0; w < working_sets_.size(); ++w) {
    WorkingSet& set = working_sets_[w];
    const std::uint64_t id = tokens_ / set.window + 1;
    for (std::uint32_t l = 0; l < shape_.layers; ++l)
      for (std::size_t i = 0; i < k; ++i) {
        std::uint64_t& seen = seen_in_window_[w][std::size_t{l} * shape_.experts + row(l)[i]];
        if (seen != id) {
          seen = id;
          ++set.current;
        }
      }
    if ((tokens_ + 1) % set.window == 0) {
      ++set.windows;
      set.distinct_sum += double(set.current);
      set.current = 0;
    }
  }
  decode_tokens_ += token.phase == Phase::Decode;
  ++tokens_;
}

RoutingCounts RoutingCounts::of(TraceSource& source, TraceShape shape, std::vector<std::uint32_t> windows) {
  RoutingCounts counts(shape, std::move(windows));
  Token token{};
  while (source.next(token)) counts.add(token);
  return counts;
}

RoutingCounts RoutingCounts::of(const RoutingTrace& trace, std::vector<std::uint32_t> windows) {
  const TraceShape& shape = trace.shape();
  RoutingCounts counts(shape, std::move(windows));
  Token token{0, 0, std::vector<std::uint16_t>(std::size_t{shape.layers} * shape.top_k), {}};
  for (std::size_t t = 0; t < trace.tokens(); ++t) {
    token.seq = trace.seq(t);
    token.index = trace.index(t);
    token.phase = trace.phase(t);
    for (std::uint32_t l = 0; l < shape.layers; ++l)
      std::copy_n(trace.experts(t, l).data(), shape.top_k, token.experts.data() + l * shape.top_k);
    counts.add(token);
  }
  return counts;
}

double gini(const Eigen::Ref<const Eigen::VectorXd>& values) {
  std::vector<double> sorted(values.data(), values.data() + values.size());
  std::sort(sorted.begin(), sorted.end());
  double total = 0, weighted = 0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    total += sorted[i];
    weighted += double(i + 1) * sorted[i];
  }
  if (total <= 0) return 0;
  const double n = double(sorted.size());
  return 2 * weighted / (n * total) - (n + 1) / n;
}

double total_variation(const Eigen::Ref<const Eigen::VectorXd>& a, const Eigen::Ref<const Eigen::VectorXd>& b) {
  return 0.5 * (a / a.sum() - b / b.sum()).cwiseAbs().sum();
}

double mutual_information_bits(const Eigen::MatrixXd& pairs) {
  const double total = pairs.sum();
  if (total <= 0) return 0;
  const Eigen::VectorXd rows = pairs.rowwise().sum(), cols = pairs.colwise().sum().transpose();
  double mutual = 0;
  for (Eigen::Index i = 0; i < pairs.rows(); ++i)
    for (Eigen::Index j = 0; j < pairs.cols(); ++j)
      if (const double n = pairs(i, j); n > 0) mutual += n / total * std::log2(n * total / (rows[i] * cols[j]));
  // The plug-in estimate is biased upwards by about (rows - 1)(columns - 1) / 2N nats (Miller-Madow):
  // 0.15 bits for 64 x 64 experts over 20k tokens, as much as the dependence being measured.
  const double used_rows = double((rows.array() > 0).count()), used_cols = double((cols.array() > 0).count());
  return std::max(0.0, mutual - (used_rows - 1) * (used_cols - 1) / (2 * total * std::log(2.0)));
}

double predictability(const Eigen::MatrixXd& pairs) {
  const double total = pairs.sum();
  return total > 0 ? pairs.rowwise().maxCoeff().sum() / total : 0;
}

double expected_union(const Eigen::Ref<const Eigen::VectorXd>& chosen, std::uint64_t tokens, std::uint64_t batch) {
  // A batch larger than the tokens can only take them all.
  const std::uint64_t b = std::min(batch, tokens);
  const double n = double(tokens);
  double sum = 0;
  for (const double c : chosen) {
    if (c <= 0) continue;
    // The batch misses expert e with probability C(n - c, b) / C(n, b) = prod_{i<b} (1 - c / (n - i)),
    // 0 once c > n - b (some drawn token must choose e). Each factor is in [0, 1], so the product
    // neither overflows nor cancels as the binomials themselves would; summing logs and taking
    // -expm1 keeps the hit probability accurate when it is small (b = 1: c / n, to rounding). The
    // cost is b steps per expert, nothing for the batch sizes of a decode step.
    if (c > n - double(b)) {
      sum += 1;
      continue;
    }
    double log_miss = 0;
    for (std::uint64_t i = 0; i < b; ++i) log_miss += std::log1p(-c / (n - double(i)));
    sum += -std::expm1(log_miss);
  }
  return sum;
}

TraceStats summarize(const RoutingCounts& counts, const std::vector<std::uint32_t>& batches) {
  const TraceShape& shape = counts.shape();
  TraceStats s;
  s.shape = shape;
  s.tokens = counts.tokens();
  s.sequences = counts.sequences();
  const double pairs = double(counts.adjacent_pairs());
  if (pairs > 0) s.adjacent_reuse = counts.reuse_sum().sum() / (pairs * shape.layers);
  double predictable = 0, mutual = 0;
  for (std::uint32_t l = 0; l < shape.layers; ++l) {
    LayerStats layer;
    layer.layer = l;
    const Eigen::VectorXd assigned = counts.assignments().row(l).transpose();
    const double total = assigned.sum();
    layer.popularity = total > 0 ? Eigen::VectorXd(assigned / total) : Eigen::VectorXd::Zero(shape.experts);
    layer.gini = gini(assigned);
    layer.top_share = layer.popularity.maxCoeff();
    for (const double p : layer.popularity) layer.entropy_bits -= p > 0 ? p * std::log2(p) : 0;
    layer.adjacent_reuse = pairs > 0 ? counts.reuse_sum()[l] / pairs : 0;
    if (l + 1 < shape.layers) {
      const double p = traces::predictability(counts.top1_pairs()[l]);
      const double mi = mutual_information_bits(counts.top1_pairs()[l]);
      layer.next_top1_predictability = p;
      layer.next_mutual_information_bits = mi;
      predictable += p;
      mutual += mi;
    }
    s.per_layer.push_back(std::move(layer));
  }
  if (shape.layers > 1) {
    s.cross_layer_top1_predictability = predictable / (shape.layers - 1);
    s.cross_layer_mutual_information_bits = mutual / (shape.layers - 1);
  }
  for (const auto& set : counts.working_sets())
    if (set.windows > 0)
      s.working_set.push_back({set.window, set.distinct_sum / double(set.windows) / shape.layers});
  s.decode_tokens = counts.decode_tokens();
  for (const std::uint32_t batch : batches) {
    TraceStats::BatchUnion u{batch, 0, {}};
    for (std::uint32_t l = 0; l < shape.layers; ++l) {
      u.per_layer.push_back(expected_union(counts.decode_assignments().row(l).transpose(), s.decode_tokens, batch));
      u.mean += u.per_layer.back();
    }
    u.mean /= shape.layers;
    s.batch_union.push_back(std::move(u));
  }
  return s;
}

}  // namespace rmai::traces
