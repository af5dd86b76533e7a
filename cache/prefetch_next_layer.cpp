// Next-layer predictor from cross-layer affinity, learned online.
//
// It counts, over the tokens this node has already routed, how often expert e at layer l was
// followed by expert e' at layer l + 1 (every routed pair, all ranks). Given a token's experts at
// layer l, it predicts the experts of layer l + 1 with the largest summed counts (ties to the
// lower id). Only successors seen at least once are predicted: with no evidence it prefetches
// nothing rather than guess. It never looks at the future: a layer's counts grow only once the
// layer has been routed.
#include <algorithm>
#include <stdexcept>

#include "cache/prefetcher.hpp"

namespace rmai::cache {
namespace {

class NextLayer final : public Prefetcher {
 public:
  explicit NextLayer(const PrefetchContext& context)
      : layers_(context.layers),
        experts_(context.experts),
        depth_(context.depth),
        counts_(std::size_t(context.layers > 0 ? context.layers - 1 : 0) * context.experts * context.experts, 0),
        score_(context.experts, 0) {
    candidates_.reserve(context.experts);
  }

  void routed(std::size_t, std::uint32_t layer, std::span<const ExpertKey> keys,
              std::vector<ExpertKey>& predicted) override {
    if (layer > 0) {
      if (layer != previous_layer_ + 1) throw std::logic_error("next-layer prefetcher: layers out of order");
      for (const ExpertKey from : previous_)
        for (const ExpertKey to : keys) ++count(from, to);
    }
    previous_.assign(keys.begin(), keys.end());
    previous_layer_ = layer;

    predicted.clear();
    if (layer + 1 >= layers_) return;
    std::fill(score_.begin(), score_.end(), 0);
    for (const ExpertKey from : keys) {
      const std::uint32_t* row = &counts_[row_of(from)];
      for (std::uint32_t e = 0; e < experts_; ++e) score_[e] += row[e];
    }
    candidates_.clear();
    for (std::uint32_t e = 0; e < experts_; ++e)
      if (score_[e] > 0) candidates_.push_back(e);
    const std::size_t n = std::min<std::size_t>(depth_, candidates_.size());
    std::partial_sort(candidates_.begin(), candidates_.begin() + std::ptrdiff_t(n), candidates_.end(),
                      [&](std::uint32_t a, std::uint32_t b) { return score_[a] != score_[b] ? score_[a] > score_[b] : a < b; });
    for (std::size_t i = 0; i < n; ++i) predicted.push_back(expert_key(layer + 1, candidates_[i], experts_));
  }

 private:
  // counts_ holds, for each layer l < layers - 1 and expert e at l (key `from`), a row over the
  // experts of l + 1: rows are indexed by the dense key itself.
  std::size_t row_of(ExpertKey from) const { return std::size_t(from) * experts_; }
  std::uint32_t& count(ExpertKey from, ExpertKey to) {
    return counts_[row_of(from) + expert_of(to, experts_)];
  }

  std::uint32_t layers_, experts_, depth_;
  // A pair counts at most once per token: 32 bits hold four billion replayed tokens.
  std::vector<std::uint32_t> counts_;
  std::vector<std::uint64_t> score_;  // by expert of the next layer
  std::vector<std::uint32_t> candidates_;
  std::vector<ExpertKey> previous_;  // the keys of the last routed layer
  std::uint32_t previous_layer_ = 0;
};

RMAI_REGISTER(PrefetcherRegistry, "next-layer",
              "learns online which experts follow which from layer to layer (cross-layer affinity) and "
              "prefetches the most frequent successors of the token's experts",
              [](const PrefetchContext& c) { return std::make_unique<NextLayer>(c); });

}  // namespace
}  // namespace rmai::cache
