// Placeholder until the tool lands.
#include <iostream>

#include "commands.hpp"

namespace rmai::cli {

int trace_convert(const std::vector<std::string>&) {
  std::cerr << "rmai: trace convert is not built yet\n";
  return 1;
}

}  // namespace rmai::cli
