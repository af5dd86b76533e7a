#pragma once
// Trace replay on the simulated cluster: the entry point of the simulator.
#include <cstdint>
#include <string>
#include <vector>

#include "metrics/results.hpp"
#include "spec/experiment.hpp"
#include "cache/replay.hpp"
#include "traces/spilled_trace.hpp"

namespace rmai::sim {

// The SimGrid options every run starts from: CM02 without cross traffic, so that one transfer on
// an idle route takes exactly latency + size / bandwidth, and no TCP window cap on long routes.
// `--cfg=` options given by the user come after these and override them.
const std::vector<std::string>& default_simgrid_options();

// Checks each pass-through `--cfg=`/`--log=` option with a throw-away engine in a child process,
// before the real one starts: SimGrid aborts the process on a bad one. Throws InputError naming the
// option and SimGrid's reason.
void check_simgrid_options(const std::vector<std::string>& simgrid_args);

// Checks that the cache policy, the prefetcher and the tier the experiment names are registered
// (load_experiment cannot: the registries live above the models library). Throws InputError.
void check_registered(const spec::Experiment& experiment);

// Replays `trace` on every inference node of the experiment (node i starts at token
// i * tokens / nodes and wraps around, so nodes are busy with different tokens), and returns the
// metrics. `simgrid_args` are pass-through `--cfg=`/`--log=` options. The switches go into
// `switches` as they happen, the nodes' interleaved (in memory by default; a log that streams
// keeps the run's memory flat). One call per process: SimGrid runs one engine per process.
metrics::RunResult simulate(const spec::Experiment& experiment, const traces::SpilledTrace& trace,
                            const std::vector<std::string>& simgrid_args, const cache::ReplayProgress& progress = {},
                            metrics::SwitchLog switches = {});
// The same for a trace in memory (spilled first).
metrics::RunResult simulate(const spec::Experiment& experiment, const traces::RoutingTrace& trace,
                            const std::vector<std::string>& simgrid_args, const cache::ReplayProgress& progress = {},
                            metrics::SwitchLog switches = {});

// How the transfers of this process's simulate() were timed: by the fast path in closed form (alone
// on their links) or as flows of its Fabric (sim/fabric.hpp), or as SimGrid comms. For the tests
// that the fast path is taken where it applies, and only there.
struct TransferCounts {
  std::uint64_t closed_form = 0;
  std::uint64_t fabric = 0;
  std::uint64_t comms = 0;
};
TransferCounts transfer_counts();

// Seconds a step spends computing one MoE layer / all dense layers on the GPU (roofline: the larger
// of the bytes read over HBM bandwidth and the FLOPs over compute). The weights in use are read once
// per step, FLOPs grow with the step's tokens, and each token of context costs attention its KV
// cache reads and FLOPs (docs/architecture.md, "Serving"). The default step is one decode token
// without context: today's token-by-token roofline.
double moe_layer_compute_time(const spec::Experiment& experiment, const cache::StepWork& work);
double moe_layer_compute_time(const spec::Experiment& experiment);
double dense_layers_compute_time(const spec::Experiment& experiment, const cache::StepWork& work);
double dense_layers_compute_time(const spec::Experiment& experiment);

}  // namespace rmai::sim
