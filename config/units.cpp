#include "config/units.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace rmai::units {
namespace {

struct Suffix {
  std::string_view text;
  double factor;  // to the SI base unit of the quantity
};

constexpr std::array kByteSuffixes{
    Suffix{"B", 1.0},      Suffix{"KB", 1e3},           Suffix{"MB", 1e6},
    Suffix{"GB", 1e9},     Suffix{"TB", 1e12},          Suffix{"KiB", 1024.0},
    Suffix{"MiB", 1048576.0}, Suffix{"GiB", 1073741824.0}, Suffix{"TiB", 1099511627776.0},
};

constexpr std::array kBandwidthSuffixes{
    Suffix{"bps", 1.0 / 8},   Suffix{"Kbps", 1e3 / 8},  Suffix{"Mbps", 1e6 / 8},
    Suffix{"Gbps", 1e9 / 8},  Suffix{"Tbps", 1e12 / 8}, Suffix{"Bps", 1.0},
    Suffix{"KBps", 1e3},      Suffix{"MBps", 1e6},      Suffix{"GBps", 1e9},
    Suffix{"TBps", 1e12},     Suffix{"KiBps", 1024.0},  Suffix{"MiBps", 1048576.0},
    Suffix{"GiBps", 1073741824.0},
};

constexpr std::array kTimeSuffixes{
    Suffix{"ns", 1e-9},
    Suffix{"us", 1e-6},
    Suffix{"ms", 1e-3},
    Suffix{"s", 1.0},
};

const char* examples(Quantity quantity) {
  switch (quantity) {
    case Quantity::Bytes: return "a size like 4KiB, 352MB or 2GiB";
    case Quantity::Bandwidth: return "a bandwidth like 100Gbps (bits/s) or 25GBps (bytes/s)";
    case Quantity::Time: return "a time like 80ns, 2us, 1.5ms or 1s";
  }
  return "";
}

template <std::size_t N>
double factor_of(std::string_view unit, const std::array<Suffix, N>& table) {
  for (const auto& suffix : table)
    if (suffix.text == unit) return suffix.factor;
  return NAN;
}

}  // namespace

double parse(std::string_view text, Quantity quantity) {
  const auto fail = [&](const std::string& why) {
    throw std::invalid_argument("\"" + std::string(text) + "\" " + why + ": expected " +
                                examples(quantity));
  };
  double number = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [rest, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || rest == begin) fail("is not a number with a unit");
  if (!std::isfinite(number)) fail("is not finite");
  std::string unit(rest, end);
  if (quantity == Quantity::Bandwidth && unit.size() > 2 && unit.ends_with("/s"))
    unit = unit.substr(0, unit.size() - 2) + "ps";  // "GB/s" -> "GBps"
  if (unit.empty()) fail("has no unit");
  double factor = NAN;
  switch (quantity) {
    case Quantity::Bytes: factor = factor_of(unit, kByteSuffixes); break;
    case Quantity::Bandwidth: factor = factor_of(unit, kBandwidthSuffixes); break;
    case Quantity::Time: factor = factor_of(unit, kTimeSuffixes); break;
  }
  if (std::isnan(factor)) fail("has an unknown unit \"" + unit + "\"");
  const double value = number * factor;
  if (!(std::fabs(value) <= max_of(quantity)))
    throw std::invalid_argument("\"" + std::string(text) + "\" is out of range (at most " +
                                format(max_of(quantity), quantity) + ")");
  return value;
}

double max_of(Quantity quantity) {
  switch (quantity) {
    case Quantity::Bytes: return kMaxBytes;
    case Quantity::Bandwidth: return kMaxBandwidth;
    case Quantity::Time: return kMaxTime;
  }
  return 0;
}

double parse_bytes(std::string_view text) { return parse(text, Quantity::Bytes); }
double parse_bandwidth(std::string_view text) { return parse(text, Quantity::Bandwidth); }
double parse_time(std::string_view text) { return parse(text, Quantity::Time); }

std::string format(double value, Quantity quantity) {
  std::array<char, 64> buffer{};
  auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  std::string number(buffer.data(), end);
  switch (quantity) {
    case Quantity::Bytes: return number + "B";
    case Quantity::Bandwidth: return number + "Bps";
    case Quantity::Time: return number + "s";
  }
  return number;
}

}  // namespace rmai::units
