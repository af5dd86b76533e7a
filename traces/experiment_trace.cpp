#include "traces/experiment_trace.hpp"

#include "config/errors.hpp"

namespace rmai::traces {

Generator experiment_generator(const spec::Experiment& e) {
  return load_generator(e.trace.generator, shape_of(e.model), e.trace.seed);
}

RoutingTrace experiment_trace(const spec::Experiment& e) {
  if (!e.trace.file)
    return generate(experiment_generator(e), e.trace.tokens, e.trace.seed, e.trace.sequences, e.serving.prompt);
  const TraceShape shape = shape_of(e.model);
  auto source = open_trace(*e.trace.file, shape);
  auto trace = RoutingTrace::load(*source, shape);
  if (trace.tokens() == 0) throw InputError(e.trace.file->string(), "the trace has no tokens to replay");
  return trace;
}

}  // namespace rmai::traces
