#pragma once
// The command line of `rmai`: one CLI11 parser for every subcommand. Each command adds its subcommand
// with add_command and binds its options with the helpers below; parse errors become InputError
// (exit 2) naming the option, in the words of rmai's other bad-input messages.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rmai::cli {

// What a subcommand does once its options are parsed: its exit code.
using Action = std::function<int()>;

// A subcommand of `parent` running `action` when it is the one given (none: it only groups others,
// like `trace`). Unknown arguments are collected, not refused by CLI11, so that run_command_line
// names them.
CLI::App* add_command(CLI::App& parent, const std::string& name, const std::string& description, Action action = {});

// Sets the action of a command made without one (when the action needs the command itself).
void set_action(const CLI::App& app, Action action);

// The arguments rmai was started with, after the program name (what `rmai trace fit` records).
const std::vector<std::string>& command_line();

// An option with one value per occurrence (`--name V` or `--name=V`), `each` called for every
// occurrence in command-line order. A value that is itself an option (`--out --set`) is refused.
CLI::Option* add_each(CLI::App* app, const std::string& names, std::function<void(const std::string&)> each,
                      const std::string& description);
// The same keeping the last value.
CLI::Option* add_value(CLI::App* app, const std::string& names, std::string& into, const std::string& description);
// The same keeping every value.
CLI::Option* add_values(CLI::App* app, const std::string& names, std::vector<std::string>& into,
                        const std::string& description);

// The experiment file and the options of every command that loads one: --set key=value, --seed N and
// --mode M, kept as assignments in command-line order (so the last one given wins).
struct ExperimentArgs {
  std::string file;
  std::vector<std::string> sets;
};
void add_experiment_args(CLI::App* app, ExperimentArgs& args);

// The value of a count option: digits only. Throws InputError naming the option.
std::uint64_t parse_count(const std::string& option, const std::string& text);

// "rmai trace gen": how the help and the error messages name a subcommand.
std::string command_path(const CLI::App& app);

// Parses the command line and runs the chosen subcommand's action: its exit code. --help, --version
// and `rmai help CMD` print to stdout and give 0; no subcommand prints the help to stderr and gives
// 2. Throws InputError for bad arguments.
int run_command_line(CLI::App& root, int argc, char** argv);

}  // namespace rmai::cli
