// Placeholder while the emulator is written (issue 5).
#include <iostream>

#include "commands.hpp"

namespace rmai::cli {

int validate(const std::vector<std::string>&) {
  std::cerr << "rmai validate: not built yet\n";
  return 1;
}

}  // namespace rmai::cli
