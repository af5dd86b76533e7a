#pragma once
// Routing statistics of a trace (docs/interfaces.md, `rmai trace stats`): per-layer popularity and skew,
// adjacent-token reuse, cross-layer predictability and mutual information, working sets, the expected
// union of experts a batch of decode tokens needs per layer. Counting
// is one streaming pass (RoutingCounts); `fit` estimates generators from the same counts.
#include <Eigen/Core>

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "traces/trace.hpp"

namespace rmai::traces {

// The most the cross-layer pair tables of RoutingCounts may take (docs/interfaces.md, "Bounds on
// input sizes").
inline constexpr std::size_t kPairTableBudget = std::size_t{256} << 20;

// Raw counts of a trace, accumulated token by token in trace order.
class RoutingCounts {
 public:
  // `windows`: token-window lengths whose working sets are measured.
  explicit RoutingCounts(TraceShape shape, std::vector<std::uint32_t> windows = {4, 16, 64, 256});
  void add(const Token& token);
  static RoutingCounts of(TraceSource& source, TraceShape shape,
                          std::vector<std::uint32_t> windows = {4, 16, 64, 256});
  static RoutingCounts of(const RoutingTrace& trace, std::vector<std::uint32_t> windows = {4, 16, 64, 256});

  const TraceShape& shape() const { return shape_; }
  std::uint64_t tokens() const { return tokens_; }
  std::uint64_t sequences() const { return previous_.size(); }
  // Consecutive token pairs of a sequence (the denominator of adjacent reuse).
  std::uint64_t adjacent_pairs() const { return adjacent_pairs_; }
  // assignments(l, e): how many tokens chose expert e at layer l.
  const Eigen::MatrixXd& assignments() const { return assignments_; }
  // The same over decode tokens only (Token::phase): what a batched decode step draws its tokens from.
  std::uint64_t decode_tokens() const { return decode_tokens_; }
  const Eigen::MatrixXd& decode_assignments() const { return decode_assignments_; }
  // Sum over adjacent pairs of the overlap fraction at each layer.
  const Eigen::VectorXd& reuse_sum() const { return reuse_sum_; }
  // For l = 0..layers-2: (top-1 at l, top-1 at l+1) and (rank-i at l, rank-i at l+1) pair counts.
  const std::vector<Eigen::MatrixXd>& top1_pairs() const { return top1_pairs_; }
  const std::vector<Eigen::MatrixXd>& rank_pairs() const { return rank_pairs_; }
  struct WorkingSet {
    std::uint32_t window;
    std::uint64_t windows = 0;   // complete windows seen
    double distinct_sum = 0;     // distinct (layer, expert) pairs summed over complete windows
    std::uint64_t current = 0;   // distinct pairs in the window in progress
  };
  const std::vector<WorkingSet>& working_sets() const { return working_sets_; }

 private:
  TraceShape shape_;
  std::uint64_t tokens_ = 0;
  std::uint64_t decode_tokens_ = 0;
  std::uint64_t adjacent_pairs_ = 0;
  Eigen::MatrixXd assignments_;
  Eigen::MatrixXd decode_assignments_;
  Eigen::VectorXd reuse_sum_;
  std::vector<Eigen::MatrixXd> top1_pairs_;
  std::vector<Eigen::MatrixXd> rank_pairs_;
  std::unordered_map<std::uint32_t, std::vector<std::uint16_t>> previous_;  // last token per sequence
  std::vector<WorkingSet> working_sets_;
  std::vector<std::vector<std::uint64_t>> seen_in_window_;  // per window length: (layer, expert) -> window id + 1
};

struct LayerStats {
  std::uint32_t layer = 0;
  Eigen::VectorXd popularity;  // share of the layer's assignments per expert (sums to 1)
  double gini = 0;             // of the per-expert assignment counts (0: balanced)
  double top_share = 0;        // the most chosen expert's share of assignments
  double entropy_bits = 0;     // of `popularity`
  double adjacent_reuse = 0;
  // Top-1 expert here -> top-1 at the next layer; empty for the last layer.
  std::optional<double> next_top1_predictability;  // sum_e max_e' P(e, e')
  std::optional<double> next_mutual_information_bits;
};

struct TraceStats {
  TraceShape shape{};
  std::uint64_t tokens = 0, sequences = 0;
  double adjacent_reuse = 0;  // mean over adjacent pairs and layers (docs/interfaces.md)
  // Means over layers 0..layers-2; empty with a single layer.
  std::optional<double> cross_layer_top1_predictability, cross_layer_mutual_information_bits;
  std::vector<LayerStats> per_layer;
  struct WorkingSet {
    std::uint32_t window;
    double experts_per_layer;  // mean distinct experts per layer in a window of `window` tokens
  };
  std::vector<WorkingSet> working_set;  // only windows the trace fills at least once
  // Batched decode: the expected number of distinct experts per layer among `batch` decode tokens
  // drawn at random without replacement (expected_union); all zero without decode tokens.
  std::uint64_t decode_tokens = 0;
  struct BatchUnion {
    std::uint32_t batch;
    double mean;                    // over layers
    std::vector<double> per_layer;  // by layer
  };
  std::vector<BatchUnion> batch_union;  // one per batch size asked for, in that order
};

// The batch sizes `rmai trace stats` reports the expected union for.
inline const std::vector<std::uint32_t> kUnionBatches = {1, 4, 16, 64};

TraceStats summarize(const RoutingCounts& counts, const std::vector<std::uint32_t>& batches = kUnionBatches);

// Of one layer where `tokens` tokens were routed and chosen[e] of them chose expert e: the expected
// number of distinct experts among `batch` of those tokens drawn without replacement,
// sum_e (1 - C(tokens - chosen[e], batch) / C(tokens, batch)). A batch of at least `tokens` takes
// them all (the experts chosen at all); batch 1 gives the mean experts per token (top_k); 0 without
// tokens.
double expected_union(const Eigen::Ref<const Eigen::VectorXd>& chosen, std::uint64_t tokens, std::uint64_t batch);

// Gini coefficient of non-negative values (0 when all are equal or all are zero).
double gini(const Eigen::Ref<const Eigen::VectorXd>& values);
// Of pair counts (row, column): the mutual information in bits (plug-in with the Miller-Madow bias
// correction, at least 0), and the predictability sum_row max_column P(row, column) (how often the
// most likely column given the row is right; plug-in, as docs/interfaces.md defines it).
double mutual_information_bits(const Eigen::MatrixXd& pairs);
double predictability(const Eigen::MatrixXd& pairs);
// Total variation distance between two distributions given as non-negative weights.
double total_variation(const Eigen::Ref<const Eigen::VectorXd>& a, const Eigen::Ref<const Eigen::VectorXd>& b);

}  // namespace rmai::traces
