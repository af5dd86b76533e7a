#include "cache/replay.hpp"

namespace rmai::cache {

ReplayPlan replay_plan(const spec::Experiment& e, std::size_t first_token) {
  ReplayPlan plan;
  plan.first_token = first_token;
  plan.experts = e.model.experts;
  plan.top_k = e.model.top_k;
  for (std::uint32_t layer = 0; layer < e.model.moe_layers; ++layer) plan.replays_layer.push_back(e.replays_layer(layer));
  return plan;
}

ReplayTally replay(const traces::RoutingTrace& trace, const ReplayPlan& plan, ExpertCache& cache,
                   ReplayExecutor& exec) {
  ReplayTally tally;
  const std::size_t tokens = trace.tokens();
  std::vector<ExpertKey> layer_keys(plan.top_k);
  tally.token_latencies.reserve(tokens);
  for (std::size_t step = 0; step < tokens; ++step) {
    const std::size_t token = (plan.first_token + step) % tokens;
    const double token_start = exec.now();
    exec.compute(plan.dense_time);
    for (std::uint32_t layer = 0; layer < plan.replays_layer.size(); ++layer) {
      if (!plan.replays_layer[layer]) continue;
      exec.layer_begins(layer_keys);
      const auto experts = trace.experts(token, layer);
      for (std::size_t k = 0; k < experts.size(); ++k) layer_keys[k] = expert_key(layer, experts[k], plan.experts);
      for (std::size_t k = 0; k < experts.size(); ++k) {
        ++tally.accesses;
        const double wait_start = exec.now();
        exec.before_lookup(layer_keys[k]);  // may wait for the expert's prefetch
        const auto access = cache.access(layer_keys[k], layer_keys);
        if (!access.hit) {
          if (access.evicted) exec.evicted(*access.evicted);
          exec.switch_in({token, layer, experts[k], layer_keys[k]});
        }
        tally.stall_s += exec.now() - wait_start;
      }
      exec.layer_routed(token, layer, layer_keys);
      exec.compute(plan.layer_time);
    }
    tally.token_latencies.push_back(exec.now() - token_start);
    if (plan.progress) plan.progress(step + 1, tokens);
  }
  exec.replay_ends();
  return tally;
}

}  // namespace rmai::cache
