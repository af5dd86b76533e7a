#pragma once
// The subcommands of `rmai`. Each returns the process exit code; bad input throws InputError.
#include <string>
#include <vector>

namespace rmai::cli {

int run(const std::vector<std::string>& args);
int check(const std::vector<std::string>& args);
int list(const std::vector<std::string>& args);
int sweep(const std::vector<std::string>& args);  // cli/sweep.cpp
int reproduce(const std::vector<std::string>& args);  // cli/reproduce.cpp
int memd(const std::vector<std::string>& args);       // cli/memd.cpp
int validate(const std::vector<std::string>& args);   // cli/validate.cpp

// `rmai trace <tool> ...`: dispatches to the trace tools below (cli/trace_*.cpp).
int trace(const std::vector<std::string>& args);
int trace_import(const std::vector<std::string>& args);   // cli/trace_import.cpp
int trace_convert(const std::vector<std::string>& args);  // cli/trace_convert.cpp
int trace_gen(const std::vector<std::string>& args);      // cli/trace_tools.cpp
int trace_fit(const std::vector<std::string>& args);      // cli/trace_tools.cpp
int trace_stats(const std::vector<std::string>& args);    // cli/trace_tools.cpp

}  // namespace rmai::cli
