// Placeholder until the tool lands.
#include <iostream>

#include "commands.hpp"

namespace rmai::cli {

int trace_import(const std::vector<std::string>&) {
  std::cerr << "rmai: trace import is not built yet\n";
  return 1;
}

}  // namespace rmai::cli
