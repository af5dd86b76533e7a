// libFuzzer target: memd's control protocol (emul/control.hpp) on arbitrary bytes, both ways.
// - First byte even: the bytes are a client's stream, taken the way the server's event loop takes
//   them (hello_bytes_missing says how much to read, at most kMaxHello + 4 in all, then
//   check_hello). Any exception, or a hello growing beyond the bound, is a finding.
// - First byte odd: the bytes are the payload of a server's answer as the client decodes it
//   (parse_answer). std::runtime_error is the expected answer to nonsense; a welcome that parses
//   must encode and parse back equal.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "emul/control.hpp"

using namespace rmai::emul;

namespace {

bool same(const Welcome& a, const Welcome& b) {
  if (a.provider != b.provider || a.fabric_address != b.fabric_address || a.object_bytes != b.object_bytes ||
      a.objects.size() != b.objects.size() || a.catalog.model != b.catalog.model ||
      a.catalog.moe_layers != b.catalog.moe_layers || a.catalog.experts != b.catalog.experts ||
      a.catalog.layers != b.catalog.layers || a.catalog.seed != b.catalog.seed)
    return false;
  // Doubles travel as their bits: compare bits, so that NaNs round-trip too.
  const auto bits = [](double v) { return std::bit_cast<std::uint64_t>(v); };
  if (bits(a.catalog.expert_bytes) != bits(b.catalog.expert_bytes) || bits(a.catalog.scale) != bits(b.catalog.scale))
    return false;
  for (std::size_t i = 0; i < a.objects.size(); ++i)
    if (a.objects[i].id != b.objects[i].id || a.objects[i].address != b.objects[i].address ||
        a.objects[i].length != b.objects[i].length || a.objects[i].key != b.objects[i].key)
      return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    static const std::string secret = "fuzz-secret-0123456789abcdef";
    std::string received;
    for (;;) {
      const auto missing = hello_bytes_missing(received);
      if (!missing) break;  // refused: announces too much
      if (received.size() > 4 + kMaxHello) __builtin_trap();
      if (*missing == 0) {
        std::string why;
        const Hello hello = check_hello(received, secret, why);
        if (hello != Hello::Right && why.empty()) __builtin_trap();
        break;
      }
      if (input.empty()) break;  // the peer went silent
      const std::size_t take = std::min({*missing, input.size(), std::size_t(1) + data[size - 1] % 512});
      received.append(input.substr(0, take));
      input.remove_prefix(take);
    }
    return 0;
  }
  try {
    const Answer answer = parse_answer(input);
    if (answer.refused) return 0;
    const std::string frame = welcome_frame(answer.welcome);
    if (!same(parse_answer(std::string_view(frame).substr(4)).welcome, answer.welcome)) __builtin_trap();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
