#pragma once
// Errors in what the user gave us (YAML, traces, command line). The CLI maps them to exit code 2.
#include <stdexcept>
#include <string>

namespace rmai {

// Bad input. `where` names the file and line, or the key, or both ("exp.yaml:12: memory.tier").
class InputError : public std::runtime_error {
 public:
  InputError(const std::string& where, const std::string& what)
      : std::runtime_error(where.empty() ? what : where + ": " + what) {}
};

}  // namespace rmai
