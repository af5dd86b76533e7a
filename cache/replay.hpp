#pragma once
// Replaying a routing trace through an expert cache: the one loop the simulator and the emulator
// share. For each token (node i of N starts at token i * T / N and wraps around): the dense layers'
// compute, then for each replayed MoE layer its routed experts in rank order, each looked up in the
// cache; a miss evicts per the policy (never the current layer's experts) and is switched in on
// demand; then the layer computes. What a switch, compute and the clock are is the executor's: the
// simulator's runs SimGrid activities on the simulated clock (sim/replay.cpp), the emulator's loads
// the expert through a real store on the wall clock (emul/emul_replay.cpp). A prefetcher hooks in
// through the executor's layer callbacks, which default to nothing.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "cache/expert_cache.hpp"
#include "spec/experiment.hpp"
#include "traces/trace.hpp"

namespace rmai::cache {

// Told after each token: tokens replayed so far, and in all (for progress on a long run).
using ReplayProgress = std::function<void(std::size_t done, std::size_t total)>;

// One routed expert of one token at one layer.
struct Access {
  std::size_t token;
  std::uint32_t layer;
  std::uint16_t expert;
  ExpertKey key;
};

class ReplayExecutor {
 public:
  virtual ~ReplayExecutor() = default;
  // Seconds on the executor's clock.
  virtual double now() = 0;
  // GPU compute of this many seconds (the simulator's roofline; the emulator has no GPU).
  virtual void compute(double seconds) = 0;
  // Brings a missed expert in on demand: the layer waits for it.
  virtual void switch_in(const Access& access) = 0;
  // The cache evicted `key` to make room for the expert about to be switched in.
  virtual void evicted(ExpertKey /*key*/) {}
  // Prefetch hooks, in this order per layer: before its routing is read; before each expert's
  // lookup; once the layer's own switches are done (with its keys), just before it computes.
  // `layer_keys` is the loop's own storage of the current layer's keys (top_k entries, filled right
  // after this call): it stays valid, and is updated in place, until replay() returns.
  virtual void layer_begins(std::span<const ExpertKey> /*layer_keys*/) {}
  virtual void before_lookup(ExpertKey /*key*/) {}
  virtual void layer_routed(std::size_t /*token*/, std::uint32_t /*layer*/, std::span<const ExpertKey> /*keys*/) {}
  // The last token ended; `layer_keys` is still valid during this call (work in flight may read it).
  virtual void replay_ends() {}
};

struct ReplayPlan {
  std::size_t first_token = 0;        // where this node starts in the trace
  std::uint32_t experts = 0;          // routed experts per MoE layer (for the keys)
  std::uint32_t top_k = 0;
  std::vector<bool> replays_layer;    // by MoE layer: false skips it (emul.layers)
  double dense_time = 0;              // compute per token of the layers without experts
  double layer_time = 0;              // compute per token of one MoE layer
  ReplayProgress progress;            // optional
};

struct ReplayTally {
  std::uint64_t accesses = 0;          // (token, layer, routed expert) lookups
  std::vector<double> token_latencies;  // per token, in replay order
  // Time the layers waited for their experts, on the executor's clock: demand switches and waits
  // for prefetches still in flight (stall = token latency minus compute, summed over the tokens).
  double stall_s = 0;
};

// The plan of `experiment` for a node starting at `first_token`: its model's shape and the layers it
// replays (Experiment::replays_layer), without compute (the simulator adds its roofline times).
ReplayPlan replay_plan(const spec::Experiment& experiment, std::size_t first_token);

// Replays every token of `trace` once, starting at plan.first_token.
ReplayTally replay(const traces::RoutingTrace& trace, const ReplayPlan& plan, ExpertCache& cache,
                   ReplayExecutor& executor);

}  // namespace rmai::cache
