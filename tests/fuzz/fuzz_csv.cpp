// libFuzzer target: the canonical CSV reader on arbitrary bytes. rmai::InputError is the expected
// answer to bad input; any other exception, a crash, a sanitizer report or a hang is a finding.
// An accepted file must also survive write_csv and read back equal (the round trip the tools use).
#include <cstddef>
#include <cstdint>
#include <sstream>

#include "config/errors.hpp"
#include "memfile.hpp"
#include "traces/trace.hpp"

using namespace rmai::traces;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static rmai::fuzz::MemFile input("csv"), again("csv-again");
  // Two shapes: the seeds' (2 layers, top-2 of 8) and a one-expert model, where top_k == experts.
  for (const TraceShape shape : {TraceShape{2, 2, 8}, TraceShape{1, 1, 1}}) {
    try {
      const auto source = open_csv(input.write(data, size), shape);
      const RoutingTrace trace = RoutingTrace::load(*source, shape);
      std::ostringstream csv;
      write_csv(trace, csv);
      const std::string text = csv.str();
      const auto reread = open_csv(again.write(text.data(), text.size()), shape);
      if (!(RoutingTrace::load(*reread, shape) == trace)) __builtin_trap();
    } catch (const rmai::InputError&) {
    }
  }
  return 0;
}
