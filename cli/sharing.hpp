#pragma once
// `rmai validate --sharing`: N emulated inference nodes (separate `rmai run --mode emul` processes)
// sharing one memd through a shaped link, against the simulator's N nodes sharing one memory
// server's NIC (cli/validate_sharing.cpp). And the start barrier those clients wait at.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <functional>
#include <string>

#include "cli/options.hpp"

namespace rmai::cli {

struct SharingOptions {
  std::string nodes;             // --sharing N1,N2,...; empty: not a sharing validation
  std::string link_rate = "250MBps";  // --link-rate: tbf's rate on memd's side of the link
  std::string runs = "3";        // --sharing-runs: emulated runs per N (medians, spreads)
  bool requested() const { return !nodes.empty(); }
};

// Adds --sharing, --link-rate and --sharing-runs to `rmai validate`.
void add_sharing_options(CLI::App* validate, SharingOptions& options);

// The sharing validation; writes DIR/sharing.csv. `tiers_given`: --tiers was given too (refused).
int validate_sharing(const ExperimentArgs& experiment, const std::filesystem::path& out, const std::string& platform,
                     const SharingOptions& options, bool tiers_given);

// `rmai run --ready-fd W --start-fd R`: once the emulation is set up, write a line to W and close it,
// then wait until R reaches end of file (the parent closes it to start every client at once).
struct StartBarrier {
  std::string ready_fd, start_fd;
};
void add_start_barrier_args(CLI::App* run, StartBarrier& barrier);
// The wait, or an empty function when neither option was given. Throws InputError naming the option
// when only one is given or a descriptor is not open.
std::function<void()> start_barrier(const StartBarrier& barrier);

}  // namespace rmai::cli
