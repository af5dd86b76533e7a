// Placeholder while the emulator is written (issue 5).
#include <iostream>

#include "commands.hpp"

namespace rmai::cli {

int memd(const std::vector<std::string>&) {
  std::cerr << "rmai memd: not built yet\n";
  return 1;
}

}  // namespace rmai::cli
