// Placeholder until the tools land.
#include <iostream>

#include "commands.hpp"

namespace rmai::cli {

int trace_gen(const std::vector<std::string>&) { std::cerr << "rmai: trace gen is not built yet\n"; return 1; }
int trace_fit(const std::vector<std::string>&) { std::cerr << "rmai: trace fit is not built yet\n"; return 1; }
int trace_stats(const std::vector<std::string>&) { std::cerr << "rmai: trace stats is not built yet\n"; return 1; }

}  // namespace rmai::cli
