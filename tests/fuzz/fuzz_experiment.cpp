// libFuzzer target: the experiment loader (YAML, presets, --set) on arbitrary bytes. The input is an
// experiment file; its lines starting with "#set " are also applied as --set assignments, so the
// fuzzer reaches apply_set and its interplay with the file. rmai::InputError is the expected answer
// to bad input; any other exception, a crash, a sanitizer report or a hang is a finding.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "config/errors.hpp"
#include "memfile.hpp"
#include "spec/experiment.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static rmai::fuzz::MemFile input("experiment.yaml");
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> sets;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("#set ", 0) == 0) sets.push_back(line.substr(5));
  try {
    rmai::spec::load_experiment(input.write(data, size), sets);
  } catch (const rmai::InputError&) {
  }
  return 0;
}
