#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include <stdexcept>

#include "config/units.hpp"

namespace rmai::units {
namespace {

TEST(Units, Sizes) {
  EXPECT_DOUBLE_EQ(parse_bytes("352MB"), 352e6);
  EXPECT_DOUBLE_EQ(parse_bytes("4KiB"), 4096);
  EXPECT_DOUBLE_EQ(parse_bytes("1.5GiB"), 1.5 * 1073741824.0);
  EXPECT_DOUBLE_EQ(parse_bytes("4096B"), 4096);
  EXPECT_DOUBLE_EQ(parse_bytes("2TB"), 2e12);
}

TEST(Units, BandwidthsInBitsAndBytes) {
  EXPECT_DOUBLE_EQ(parse_bandwidth("100Gbps"), 12.5e9);  // bits per second
  EXPECT_DOUBLE_EQ(parse_bandwidth("200Gbps"), 25e9);
  EXPECT_DOUBLE_EQ(parse_bandwidth("7GBps"), 7e9);       // bytes per second
  EXPECT_DOUBLE_EQ(parse_bandwidth("25GB/s"), 25e9);
  EXPECT_DOUBLE_EQ(parse_bandwidth("1MiBps"), 1048576);
}

TEST(Units, Times) {
  EXPECT_DOUBLE_EQ(parse_time("80ns"), 80e-9);
  EXPECT_DOUBLE_EQ(parse_time("2us"), 2e-6);
  EXPECT_DOUBLE_EQ(parse_time("1.5ms"), 1.5e-3);
  EXPECT_DOUBLE_EQ(parse_time("1s"), 1.0);
}

TEST(Units, RejectsWhatIsNotAQuantity) {
  for (const char* bad : {"100Gbs", "100", "", "fast", "GBps", "1e999GBps", "100 Gbps"}) {
    EXPECT_THROW(parse_bandwidth(bad), std::invalid_argument) << bad;
  }
  EXPECT_THROW(parse_bytes("12Mb"), std::invalid_argument);  // bits are not a size
  EXPECT_THROW(parse_time("3 sec"), std::invalid_argument);
  try {
    parse_bandwidth("100Gbs");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown unit \"Gbs\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("100Gbps"), std::string::npos) << "the message shows an accepted form";
  }
}

TEST(Units, FormatRoundTrips) {
  for (const double v : {352321536.0, 0.1, 12.5e9, 3e-7})
    for (const auto q : {Quantity::Bytes, Quantity::Bandwidth, Quantity::Time})
      if (v <= max_of(q)) {
        EXPECT_EQ(parse(format(v, q), q), v);
      }
}

TEST(Units, ValuesBeyondTheQuantitysBoundAreRefused) {
  // Products that overflow (1e300 Tb/s is infinite in a double) and finite values beyond the bound.
  for (const auto& [text, q] : std::vector<std::pair<std::string, Quantity>>{
           {"1e300Tbps", Quantity::Bandwidth}, {"1e308TB", Quantity::Bytes}, {"1e308s", Quantity::Time},
           {"2e18B", Quantity::Bytes}, {"1e7s", Quantity::Time}, {"-1e7s", Quantity::Time}, {"1e25Bps", Quantity::Bandwidth}}) {
    try {
      parse(text, q);
      ADD_FAILURE() << text << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(parse("1e18B", Quantity::Bytes), 1e18);
  EXPECT_EQ(parse("1000000s", Quantity::Time), 1e6);
}

}  // namespace
}  // namespace rmai::units
