#include "traces/experiment_trace.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <system_error>

#include "config/errors.hpp"

namespace rmai::traces {

Generator experiment_generator(const spec::Experiment& e) {
  return load_generator(e.trace.generator, shape_of(e.model), e.trace.seed);
}

namespace {

// What a trace file's prompt tokens ask of the experiment, checked before any replay: a prefill step
// of a sequence's P prompt tokens needs up to min(experts, P x top_k) experts of a layer at once
// (the rule load_experiment applies to serving.prompt), and the prefetchers predict decode tokens.
void check_prompts(const spec::Experiment& e, const SpilledTrace& trace) {
  const auto& sequences = trace.sequences();
  const auto longest = std::max_element(sequences.begin(), sequences.end(),
                                        [](const auto& a, const auto& b) { return a.prefill < b.prefill; });
  if (longest == sequences.end() || longest->prefill == 0) return;
  const auto& cache = e.values.child("cache");
  if (e.cache.prefetch != "none")
    throw InputError(cache.where("prefetch"), "the prefetchers predict for decode tokens: " + e.trace.file->string() +
                                                  " has prompt tokens, which take cache.prefetch: none");
  const std::uint64_t needed = std::min<std::uint64_t>(e.model.experts, longest->prefill * e.model.top_k);
  if (e.cache.gpu_experts < needed) {
    TokenWindow first;
    trace.read(longest->start, 1, first);
    throw InputError(cache.where("gpu_experts"), "sequence " + std::to_string(first.seq(longest->start)) + " of " + e.trace.file->string() + " has a prompt of " +
                                                     std::to_string(longest->prefill) +
                                                     " tokens, whose prefill step may need " + std::to_string(needed) +
                                                     " experts of one layer at once: at least that many slots");
  }
}

}  // namespace

SpilledTrace spilled_experiment_trace(const spec::Experiment& e) {
  const TraceShape shape = shape_of(e.model);
  if (!e.trace.file) {
    const Generator generator = experiment_generator(e);
    return SpilledTrace::spill([&] { return synthetic_source(generator, e.trace.tokens, e.trace.seed, e.trace.sequences,
                                                             e.serving.prompt); },
                               shape);
  }
  auto trace = [&] {
    try {
      return SpilledTrace::spill([&] { return open_trace(*e.trace.file, shape); }, shape);
    } catch (const InputError&) {  // the file's, located
      throw;
    } catch (const std::system_error&) {  // the temporary directory's: named already
      throw;
    } catch (const std::runtime_error& error) {  // changed while read
      throw std::runtime_error(e.trace.file->string() + ": " + error.what());
    }
  }();
  if (trace.tokens() == 0) throw InputError(e.trace.file->string(), "the trace has no tokens to replay");
  check_prompts(e, trace);
  return trace;
}

RoutingTrace experiment_trace(const spec::Experiment& e) {
  if (!e.trace.file)
    return generate(experiment_generator(e), e.trace.tokens, e.trace.seed, e.trace.sequences, e.serving.prompt);
  const TraceShape shape = shape_of(e.model);
  auto source = open_trace(*e.trace.file, shape);
  auto trace = RoutingTrace::load(*source, shape);
  if (trace.tokens() == 0) throw InputError(e.trace.file->string(), "the trace has no tokens to replay");
  check_prompts(e, SpilledTrace::spill(trace));
  return trace;
}

}  // namespace rmai::traces
