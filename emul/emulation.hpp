#pragma once
// `rmai run --mode emul`: builds the experiment's catalog, connects the tier to its backing (a memd
// on loopback that this run starts and stops, or the one emul.server names; a file for the disk
// tiers; DRAM), replays the trace and returns the same metrics the simulator does.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "cache/replay.hpp"
#include "emul/objects.hpp"
#include "metrics/results.hpp"
#include "spec/experiment.hpp"
#include "traces/spilled_trace.hpp"

namespace rmai::emul {

// How to start a memd that serves the same catalog: the experiment file and --set list it was
// loaded with (memd loads them itself).
struct Launch {
  std::filesystem::path experiment_file;
  std::vector<std::string> sets;
  cache::ReplayProgress progress;  // optional
  // Optional: called once everything is set up, just before the replay starts (the start barrier
  // of several clients sharing one memd, rmai validate --sharing).
  std::function<void()> before_replay;
};

// The catalog an experiment's emulation serves (emul.scale, emul.layers, the seed).
Catalog catalog_of(const spec::Experiment& experiment);

// Whether the emulator has the tier (a store registered under its name: every tier but cxl).
bool emulated(const std::string& tier);

metrics::RunResult run_emulation(const spec::Experiment& experiment, const traces::SpilledTrace& trace,
                                 const Launch& launch);

}  // namespace rmai::emul
