#pragma once
// Replaying a routing trace through an expert cache: the one loop the simulator and the emulator
// share, so that both replay exactly the same schedule (docs/architecture.md, "Serving").
//
// A node serves the trace's sequences with continuous batching: up to `batch` sequences decode
// together, one step taking the next token of each through every layer; a sequence that ends is
// replaced by the next one of the node's stream, whose prompt (its prefill tokens) is prefilled in
// a step of its own first. A step computes the dense layers, then each replayed MoE layer: the
// union of the experts its tokens routed to is looked up in the cache, token by token in rank
// order; a miss evicts per the policy (never the layer's union) and is switched in on demand,
// `concurrency` at a time, from the host cache when it holds the expert; then the layer computes
// for the step's tokens. With batch 1, no prompt, no host cache and concurrency 1 this is the plain
// token-by-token replay.
//
// The node's stream: the trace's tokens grouped by sequence (in order of first appearance), started
// at plan.first_token and wrapped around; a sequence cut by the start or the wrap is two requests.
// The trace is read from its spilled form (traces/spilled_trace.hpp), laid out in that order, a
// window per request at a time: a node's memory does not grow with the trace.
//
// What a switch, compute and the clock are is the executor's: the simulator's runs SimGrid
// activities on the simulated clock (sim/replay.cpp), the emulator's loads the expert through a real
// store on the wall clock (emul/emul_replay.cpp). A prefetcher hooks in through the executor's layer
// callbacks, which default to nothing.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "cache/expert_cache.hpp"
#include "metrics/results.hpp"
#include "spec/experiment.hpp"
#include "traces/spilled_trace.hpp"

namespace rmai::cache {

// Told after each step: stream tokens replayed so far, and in all (for progress on a long run).
using ReplayProgress = std::function<void(std::size_t done, std::size_t total)>;

// One routed expert of one token at one layer.
struct Access {
  std::size_t token;
  std::uint32_t layer;
  std::uint16_t expert;
  ExpertKey key;
  bool from_host = false;  // a GPU miss the host cache holds: only the copy to the GPU remains
  bool host_evicts = false;  // a host miss that evicted another expert from the host cache
};

// What a step computes: at one MoE layer, or in all the dense layers together.
struct StepWork {
  std::uint32_t tokens = 0;          // tokens of the step
  std::uint32_t experts_in_use = 0;  // distinct routed experts its tokens chose at the layer (0 for dense)
  double context_tokens = 0;         // tokens of KV cache read, summed over the step's tokens
};
using ComputeTime = std::function<double(const StepWork&)>;

class ReplayExecutor {
 public:
  virtual ~ReplayExecutor() = default;
  // Seconds on the executor's clock.
  virtual double now() = 0;
  // GPU compute of this many seconds (the simulator's roofline; the emulator has no GPU).
  virtual void compute(double seconds) = 0;
  // Brings a missed expert in on demand: the layer waits for it.
  virtual void switch_in(const Access& access) = 0;
  // Brings a layer's missed experts in, `concurrency` at a time; the layer waits for all of them.
  // Called only with concurrency > 1; the executors that support it override it.
  virtual void switch_in_all(std::span<const Access> misses, std::uint32_t /*concurrency*/) {
    for (const auto& access : misses) switch_in(access);
  }
  // The GPU cache evicted `key` to make room for the expert about to be switched in.
  virtual void evicted(ExpertKey /*key*/) {}
  // The host cache evicted `key` to make room for the expert about to be fetched into it.
  virtual void host_evicted(ExpertKey /*key*/) {}
  // Prefetch hooks (batch 1 only), in this order per layer: before its routing is read; before each
  // expert's lookup; once the layer's own switches are done (with the token's routing, all layers
  // as in Token::experts, valid during the call, and the layer's keys), just before it computes. `layer_keys` is the loop's own storage of the current layer's keys (top_k entries,
  // filled right after this call): it stays valid, and is updated in place, until replay() returns.
  virtual void layer_begins(std::span<const ExpertKey> /*layer_keys*/) {}
  virtual void before_lookup(ExpertKey /*key*/) {}
  virtual void layer_routed(std::size_t /*token*/, std::span<const std::uint16_t> /*routing*/, std::uint32_t /*layer*/,
                            std::span<const ExpertKey> /*keys*/) {}
  // The last token ended; `layer_keys` is still valid during this call (work in flight may read it).
  virtual void replay_ends() {}
};

struct ReplayPlan {
  std::size_t first_token = 0;        // where this node's stream starts
  std::uint32_t experts = 0;          // routed experts per MoE layer (for the keys)
  std::uint32_t top_k = 0;
  std::vector<bool> replays_layer;    // by MoE layer: false skips it (emul.layers)
  std::uint32_t batch = 1;            // serving.batch
  double context = 0;                 // serving.context: KV tokens per decode token
  std::uint32_t concurrency = 1;      // switches in flight per node
  ComputeTime dense_time;             // the dense layers' compute per step; empty: none
  ComputeTime layer_time;             // one MoE layer's compute per step; empty: none
  ReplayProgress progress;            // optional
};

struct ReplayTally {
  std::uint64_t accesses = 0;            // (token, layer, routed expert) lookups, prefill included
  std::uint64_t decode_tokens = 0, prefill_tokens = 0;
  std::uint64_t decode_steps = 0, prefill_steps = 0;
  std::uint32_t max_batch = 0;           // most tokens one decode step took
  std::uint64_t host_hits = 0;           // GPU misses the host cache served
  // Summarized as they come (exact up to a million values each, metrics/switch_log.hpp), so that
  // memory does not grow with the trace.
  metrics::StreamingSummary token_latencies;  // per decode token: its step's latency, in replay order
  metrics::StreamingSummary step_latencies;   // per decode step
  metrics::StreamingSummary ttft;             // per request with a prompt: admission to the end of its prefill
  metrics::StreamingSummary tpot;             // per request with decode tokens: time per output token
  // Time the decode steps waited for their experts, on the executor's clock: demand switches and
  // waits for prefetches still in flight (a step's latency minus its compute); prefill's apart.
  double stall_s = 0;
  double prefill_stall_s = 0;
};

// The plan of `experiment` for a node starting at `first_token`: its model's shape, the layers it
// replays (Experiment::replays_layer) and its serving, without compute (the simulator adds its
// roofline times).
ReplayPlan replay_plan(const spec::Experiment& experiment, std::size_t first_token);

// Adds one node's tally to the run's results: accesses, decode tokens, stalls, the latencies and the
// serving counts. The serving settings (result.serving.batch, ...) are the caller's.
void add_tally(ReplayTally&& tally, metrics::RunResult& result);
// The experiment's serving settings, as results report them.
metrics::Serving serving_settings(const spec::Experiment& experiment);

// Replays every token of `trace` once, starting at plan.first_token. `host`, when given, is the
// node's host-DRAM cache in front of the tier.
ReplayTally replay(const traces::SpilledTrace& trace, const ReplayPlan& plan, ExpertCache& cache,
                   ReplayExecutor& executor, ExpertCache* host = nullptr);

}  // namespace rmai::cache
