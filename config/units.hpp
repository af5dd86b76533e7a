#pragma once
// Quantities with units, parsed once from strings such as "100Gbps", "2us", "352MB", "7GBps".
// Everything inside the project is SI base units: bytes, bytes per second, seconds.
#include <string>
#include <string_view>

namespace rmai::units {

enum class Quantity { Bytes, Bandwidth, Time };

// Parses `text` as the given quantity; throws std::invalid_argument with a message that shows the
// accepted forms (callers add the file and key), also for a value beyond max_of(quantity) or below
// -max_of(quantity) after the unit. Accepted:
//   bytes:     B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB (powers of 1024)
//   bandwidth: bps, Kbps, Mbps, Gbps, Tbps (bits/s); Bps, KBps, MBps, GBps, TBps, KiBps, MiBps,
//              GiBps (bytes/s); "GB/s" style is accepted as a synonym of "GBps"
//   time:      ns, us, ms, s
double parse(std::string_view text, Quantity quantity);

double parse_bytes(std::string_view text);
double parse_bandwidth(std::string_view text);  // bytes per second
double parse_time(std::string_view text);       // seconds

// The largest value of each quantity a parameter may take (docs/interfaces.md, "Bounds on input
// sizes"): far beyond any real device, yet small enough that sums and products of a few of them stay
// finite in the simulator and fit the integers the emulator converts them to.
inline constexpr double kMaxBytes = 1e18;      // 1 EB
inline constexpr double kMaxBandwidth = 1e24;  // 1 YB/s: "no time at all" presets (emulated-none) use 1e21
inline constexpr double kMaxTime = 1e6;        // 11.6 days
double max_of(Quantity quantity);

// Formats a value back with a unit that parses to the same double (shortest round-trip digits).
std::string format(double value, Quantity quantity);

}  // namespace rmai::units
