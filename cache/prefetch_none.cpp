// No prefetching: every expert is switched in when a layer routes to it (the default).
#include "cache/prefetcher.hpp"

namespace rmai::cache {
namespace {

class NoPrefetch final : public Prefetcher {
 public:
  void routed(std::size_t, std::uint32_t, std::span<const ExpertKey>, std::vector<ExpertKey>& predicted) override {
    predicted.clear();
  }
};

RMAI_REGISTER(PrefetcherRegistry, kNoPrefetch, "no prefetching: experts are switched in when routed (default)",
              [](const PrefetchContext&) { return std::make_unique<NoPrefetch>(); });

}  // namespace
}  // namespace rmai::cache
