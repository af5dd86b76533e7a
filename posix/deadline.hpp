#pragma once
// Deadlines for waits with a timeout in seconds (the configuration's unit) on the steady clock.
#include <chrono>

namespace rmai::posix {

using Clock = std::chrono::steady_clock;

// `seconds` as the clock's duration.
inline Clock::duration duration_of(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Now plus `seconds`.
inline Clock::time_point deadline_after(double seconds) { return Clock::now() + duration_of(seconds); }

// Milliseconds left until `deadline`, at least 0: poll()'s timeout.
inline int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

}  // namespace rmai::posix
