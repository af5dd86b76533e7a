// Oracle: prefetches the token's real experts of the next layer, read from the trace ahead of time.
// No system can know them before the router runs: an upper bound for the realizable prefetchers.
#include <algorithm>

#include "cache/prefetcher.hpp"

namespace rmai::cache {
namespace {

class Oracle final : public Prefetcher {
 public:
  explicit Oracle(const PrefetchContext& context) : context_(context) {}

  void routed(std::size_t token, std::uint32_t layer, std::span<const ExpertKey>,
              std::vector<ExpertKey>& predicted) override {
    predicted.clear();
    if (layer + 1 >= context_.layers) return;
    const auto next = context_.routing(token, layer + 1);  // rank order: the first ones matter most
    const std::size_t n = std::min<std::size_t>(context_.depth, next.size());
    for (std::size_t k = 0; k < n; ++k) predicted.push_back(expert_key(layer + 1, next[k], context_.experts));
  }

 private:
  PrefetchContext context_;
};

RMAI_REGISTER(PrefetcherRegistry, "oracle",
              "the token's real next-layer experts, read from the trace ahead of time (an upper bound, not realizable)",
              [](const PrefetchContext& c) { return std::make_unique<Oracle>(c); });

}  // namespace
}  // namespace rmai::cache
