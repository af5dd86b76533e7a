// libFuzzer target: the binary trace reader (.rmtrace header and records) on arbitrary bytes.
// rmai::InputError is the expected answer to bad input; any other exception, a crash, a sanitizer
// report, a hang or a large allocation (-rss_limit_mb, -malloc_limit_mb) is a finding. An accepted
// file must also survive write_binary and read back equal.
#include <cstddef>
#include <cstdint>
#include <sstream>

#include "config/errors.hpp"
#include "memfile.hpp"
#include "traces/trace.hpp"

using namespace rmai::traces;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static rmai::fuzz::MemFile input("rmtrace"), again("rmtrace-again");
  try {
    const std::string path = input.write(data, size);
    const TraceShape shape = probe_shape(path);  // the header's shape, as `rmai trace stats` takes it
    const auto source = open_trace(path, shape);
    const RoutingTrace trace = RoutingTrace::load(*source, shape);
    std::ostringstream binary;
    write_binary(trace, binary);
    const std::string bytes = binary.str();
    const auto reread = open_trace(again.write(bytes.data(), bytes.size()), shape);
    if (!(RoutingTrace::load(*reread, shape) == trace)) __builtin_trap();
  } catch (const rmai::InputError&) {
  }
  return 0;
}
