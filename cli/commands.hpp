#pragma once
// The subcommands of `rmai`, each added to the command line by its file (cli/options.hpp). Their
// actions return the exit code; bad input throws InputError.
#include <CLI/CLI.hpp>

namespace rmai::cli {

void add_run_commands(CLI::App& root);       // run, check (cli/commands.cpp)
void add_list_command(CLI::App& root);       // cli/list.cpp
void add_sweep_command(CLI::App& root);      // cli/sweep.cpp
void add_reproduce_command(CLI::App& root);  // cli/reproduce.cpp
void add_memd_command(CLI::App& root);       // cli/memd.cpp
void add_validate_command(CLI::App& root);   // cli/validate.cpp
void add_calibrate_command(CLI::App& root);  // cli/calibrate.cpp

// `rmai trace <tool>`: the routing-trace tools (cli/trace_commands.cpp) and each tool's options.
void add_trace_commands(CLI::App& root);
void add_trace_import(CLI::App& trace);   // cli/trace_import.cpp
void add_trace_convert(CLI::App& trace);  // cli/trace_convert.cpp
void add_trace_tools(CLI::App& trace);    // gen, fit, stats (cli/trace_tools.cpp)

}  // namespace rmai::cli
