#pragma once
// The trace an experiment replays: its trace file, or its generator's synthetic trace.
#include "traces/generator.hpp"
#include "spec/experiment.hpp"
#include "traces/spilled_trace.hpp"
#include "traces/trace.hpp"

namespace rmai::traces {

inline TraceShape shape_of(const spec::MoeModel& model) { return {model.moe_layers, model.top_k, model.experts}; }

// The experiment's generator, checked against the model (InputError naming the generator file).
Generator experiment_generator(const spec::Experiment& e);

// The experiment's trace as the replay reads it, spilled to disk (traces/spilled_trace.hpp): its
// trace file, read and validated, or `trace.tokens` decode tokens of `trace.sequences` sequences
// generated with `trace.seed`, each sequence led by `serving.prompt` prefill tokens. Its memory does
// not grow with the trace. A trace without tokens is an InputError.
SpilledTrace spilled_experiment_trace(const spec::Experiment& e);
// The same trace in memory (for tools that rewrite it).
RoutingTrace experiment_trace(const spec::Experiment& e);

}  // namespace rmai::traces
