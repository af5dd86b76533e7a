#include "traces/experiment_trace.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "config/errors.hpp"

namespace rmai::traces {

Generator experiment_generator(const spec::Experiment& e) {
  return load_generator(e.trace.generator, shape_of(e.model), e.trace.seed);
}

namespace {

// What a trace file's prompt tokens ask of the experiment, checked before any replay: a prefill step
// of a sequence's P prompt tokens needs up to min(experts, P x top_k) experts of a layer at once
// (the rule load_experiment applies to serving.prompt), and the prefetchers predict decode tokens.
void check_prompts(const spec::Experiment& e, const RoutingTrace& trace) {
  if (!trace.has_phases()) return;
  const auto& cache = e.values.child("cache");
  if (e.cache.prefetch != "none")
    throw InputError(cache.where("prefetch"), "the prefetchers predict for decode tokens: " + e.trace.file->string() +
                                                  " has prompt tokens, which take cache.prefetch: none");
  std::unordered_map<std::uint32_t, std::uint64_t> prompt;  // prefill tokens per sequence
  std::uint64_t longest = 0;
  std::uint32_t of = 0;
  for (std::size_t t = 0; t < trace.tokens(); ++t)
    if (trace.phase(t) == Phase::Prefill && ++prompt[trace.seq(t)] > longest) {
      longest = prompt[trace.seq(t)];
      of = trace.seq(t);
    }
  const std::uint64_t needed = std::min<std::uint64_t>(e.model.experts, longest * e.model.top_k);
  if (e.cache.gpu_experts < needed)
    throw InputError(cache.where("gpu_experts"), "sequence " + std::to_string(of) + " of " + e.trace.file->string() +
                                                     " has a prompt of " + std::to_string(longest) +
                                                     " tokens, whose prefill step may need " + std::to_string(needed) +
                                                     " experts of one layer at once: at least that many slots");
}

}  // namespace

RoutingTrace experiment_trace(const spec::Experiment& e) {
  if (!e.trace.file)
    return generate(experiment_generator(e), e.trace.tokens, e.trace.seed, e.trace.sequences, e.serving.prompt);
  const TraceShape shape = shape_of(e.model);
  auto source = open_trace(*e.trace.file, shape);
  auto trace = RoutingTrace::load(*source, shape);
  if (trace.tokens() == 0) throw InputError(e.trace.file->string(), "the trace has no tokens to replay");
  check_prompts(e, trace);
  return trace;
}

}  // namespace rmai::traces
