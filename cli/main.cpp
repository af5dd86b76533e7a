// rmai: one executable with git-style subcommands (docs/interfaces.md). Exit codes: 0 success,
// 2 bad input (the message names the file, line or key), 1 any other failure.
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "config/errors.hpp"

namespace {

constexpr const char* kUsage = R"(usage: rmai <command> [options]

commands:
  run EXP.yaml [--set key=value]... [--out DIR] [--seed N] [--cfg=...] [--log=...]
                       simulate one experiment; results go to DIR (default results/<name>)
  check EXP.yaml [--set key=value]...
                       load and validate only; print the resolved configuration
  sweep EXP.yaml [--sweep key=v1,v2]... [--set key=value]... [--quick] [--jobs N] [--out DIR]
        [--emit slurm] [--point I] [--collect]
                       run every point of a sweep, one process each; results in DIR/results.csv
                       (rmai sweep --help)
  list                 models, presets, tiers, cache policies and every parameter
  reproduce [--out DIR] [--quick] [--jobs N] [--only NAME]...
                       every paper experiment (experiments/ with a sweep), the figures and the
                       report (default DIR results/reproduce)
  memd EXP.yaml [--set key=value]... [--listen HOST:PORT] [--secret-file F] [--ready-fd N]
                       the emulator's memory server: serves the experiment's expert objects
                       (rmai memd --help)
  validate EXP.yaml --out DIR [--set key=value]...
                       run the emulator and the simulator on the same experiment per tier and
                       write DIR/validation.csv
  trace import|convert|gen|fit|stats ...
                       routing-trace tools (rmai trace --help)
)";

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (command == "run") return rmai::cli::run(rest);
    if (command == "check") return rmai::cli::check(rest);
    if (command == "list") return rmai::cli::list(rest);
    if (command == "sweep") return rmai::cli::sweep(rest);
    if (command == "reproduce") return rmai::cli::reproduce(rest);
    if (command == "trace") return rmai::cli::trace(rest);
    if (command == "memd") return rmai::cli::memd(rest);
    if (command == "validate") return rmai::cli::validate(rest);
    std::cerr << "rmai: unknown command \"" << command << "\"\n" << kUsage;
    return 2;
  } catch (const rmai::InputError& e) {
    std::cerr << "rmai: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "rmai: failed: " << e.what() << "\n";
    return 1;
  }
}
