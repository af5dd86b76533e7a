#pragma once
// The trace an experiment replays: its trace file, or its generator's synthetic trace.
#include "traces/generator.hpp"
#include "spec/experiment.hpp"
#include "traces/trace.hpp"

namespace rmai::traces {

inline TraceShape shape_of(const spec::MoeModel& model) { return {model.moe_layers, model.top_k, model.experts}; }

// The experiment's generator, checked against the model (InputError naming the generator file).
Generator experiment_generator(const spec::Experiment& e);

// Loads and validates the trace file, or generates `trace.tokens` decode tokens of
// `trace.sequences` sequences with `trace.seed`, each sequence led by `serving.prompt` prefill tokens.
// A trace without tokens is an InputError.
RoutingTrace experiment_trace(const spec::Experiment& e);

}  // namespace rmai::traces
