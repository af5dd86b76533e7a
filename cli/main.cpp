// rmai: one executable with git-style subcommands (docs/interfaces.md). Exit codes: 0 success,
// 2 bad input (the message names the file, line, key or option), 1 any other failure.
#include <rdma/fabric.h>
#include <signal.h>

#include <exception>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/support.hpp"
#include "config/errors.hpp"

namespace {

std::string version() {
  const unsigned fabric = fi_version();
  return "rmai " RMAI_VERSION " (git " + rmai::cli::git_revision() + "), SimGrid " + rmai::cli::simgrid_version() +
         ", libfabric " + std::to_string(FI_MAJOR(fabric)) + "." + std::to_string(FI_MINOR(fabric));
}

// libfabric's PSM providers pull in libinfinipath, whose constructor takes SIGINT and SIGTERM
// (and the crash signals) with a handler that calls exit(1). rmai never opens a PSM device; with
// that handler a signal would end rmai with status 1 instead of the signal, and posix/files.hpp's
// handlers, which remove a temporary being written and are installed only over the default
// action, would stand aside. Before main no rmai code has a handler: give these two back their
// default action (an ignored signal stays ignored, as nohup wants).
void restore_default_stop_signals() {
  for (const int signal : {SIGINT, SIGTERM}) {
    struct sigaction current {};
    if (::sigaction(signal, nullptr, &current) != 0) continue;
    if (!(current.sa_flags & SA_SIGINFO) && current.sa_handler == SIG_IGN) continue;
    struct sigaction fallback {};
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    ::sigaction(signal, &fallback, nullptr);
  }
}

}  // namespace

int main(int argc, char** argv) {
  restore_default_stop_signals();
  CLI::App root("rmai: the simulator and the emulator of remote shared memory for MoE expert offloading.",
                "rmai");
  root.allow_extras();
  root.set_version_flag("--version", version, "print the versions of rmai, SimGrid and libfabric");
  rmai::cli::add_run_commands(root);
  rmai::cli::add_sweep_command(root);
  rmai::cli::add_reproduce_command(root);
  rmai::cli::add_memd_command(root);
  rmai::cli::add_validate_command(root);
  rmai::cli::add_calibrate_command(root);
  rmai::cli::add_list_command(root);
  rmai::cli::add_trace_commands(root);
  // Listed only: run_command_line turns `rmai help CMD...` into `rmai CMD... --help`.
  rmai::cli::add_command(root, "help", "The options of a command: rmai help CMD is rmai CMD --help");
  root.footer(
      "`rmai CMD --help` or `rmai help CMD` shows a command's options; `rmai run EXP.yaml --mode emul` runs an\n"
      "experiment in the emulator on this machine instead of the simulator.\n"
      "Exit codes: 0 success, 2 bad input (the message names the file, line, key or option), 1 other failure.");
  try {
    return rmai::cli::run_command_line(root, argc, argv);
  } catch (const rmai::InputError& e) {
    std::cerr << "rmai: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "rmai: failed: " << e.what() << "\n";
    return 1;
  }
}
