#pragma once
// Expert prefetchers: while a layer computes, bring in the experts the next layer will probably
// route to. A prefetcher only predicts; the replay (sim/replay.cpp) moves the experts and puts them
// in the cache. Chosen by name (cache.prefetch; PrefetcherRegistry, see `rmai list`).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "cache/expert_cache.hpp"
#include "config/registry.hpp"

namespace rmai::cache {

// What a prefetcher is built with.
struct PrefetchContext {
  std::uint32_t layers = 0;   // MoE layers
  std::uint32_t experts = 0;  // routed experts per layer
  std::uint32_t depth = 0;    // at most this many keys predicted per layer (cache.prefetch_depth)
  // The routing being replayed: the expert ids of (token, layer), in rank order, for the token
  // `routed` is being called for (the replay holds that token's routing, not the trace), during
  // that call. Only for a prefetcher that is allowed to look ahead (the oracle); the others learn
  // from `routed` alone.
  std::function<std::span<const std::uint16_t>(std::size_t token, std::uint32_t layer)> routing;
};

class Prefetcher {
 public:
  virtual ~Prefetcher() = default;
  // The node has just routed `layer` of `token` to `keys` (dense keys, rank order). Called for
  // every layer of every token, in replay order. Fills `predicted` with at most `depth` distinct
  // keys of layer + 1 to bring in, most wanted first; leaves it empty for the last layer.
  virtual void routed(std::size_t token, std::uint32_t layer, std::span<const ExpertKey> keys,
                      std::vector<ExpertKey>& predicted) = 0;
};

using PrefetcherRegistry = rmai::Registry<Prefetcher, const PrefetchContext&>;

// The prefetcher that predicts nothing. The replay then runs exactly as without prefetching (no
// prefetch actor, no extra synchronization), so results stay identical to earlier versions.
inline constexpr const char* kNoPrefetch = "none";

}  // namespace rmai::cache
