#pragma once
// The subcommands of `rmai`. Each returns the process exit code; bad input throws InputError.
#include <string>
#include <vector>

namespace rmai::cli {

int run(const std::vector<std::string>& args);
int check(const std::vector<std::string>& args);
int list(const std::vector<std::string>& args);

}  // namespace rmai::cli
