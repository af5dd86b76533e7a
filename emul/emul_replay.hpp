#pragma once
// Trace replay through an emulated tier: the emulator's counterpart of sim::simulate. One node:
// the trace's tokens in order, each layer's routed experts looked up in an expert cache of the
// configured size; a miss evicts per the policy (the store drops the victim) and loads the expert
// through the store, timed on the wall clock: the shared loop of cache/replay.hpp with the store as
// its executor.
#include "cache/replay.hpp"
#include "emul/objects.hpp"
#include "metrics/results.hpp"
#include "spec/experiment.hpp"
#include "emul/store.hpp"
#include "traces/spilled_trace.hpp"

namespace rmai::emul {

metrics::RunResult replay(const spec::Experiment& experiment, const traces::SpilledTrace& trace,
                          const Catalog& catalog, ExpertStore& store, const cache::ReplayProgress& progress = {});

}  // namespace rmai::emul
