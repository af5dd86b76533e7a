// The progress reporter of long commands (cli/progress.hpp): rate limits and the two line styles.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <thread>

#include "cli/progress.hpp"

namespace {

using rmai::cli::Progress;

std::size_t lines(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

TEST(Progress, PlainLinesAreRateLimitedOffATerminal) {
  std::ostringstream out;
  Progress p("rmai test", out, false);
  for (std::size_t done = 0; done < 1000; ++done) p.update(done, 1000);  // well within 5 s
  EXPECT_EQ(lines(out.str()), 1u) << out.str();
  EXPECT_EQ(out.str().rfind("rmai test: 0/1000 (0%), elapsed 0:00", 0), 0u) << out.str();
  EXPECT_EQ(out.str().find('\r'), std::string::npos);
  p.update(1000, 1000);  // the end is always shown
  EXPECT_EQ(lines(out.str()), 2u) << out.str();
  EXPECT_NE(out.str().find("1000/1000 (100%)"), std::string::npos) << out.str();
}

TEST(Progress, ATerminalLineIsRewrittenInPlace) {
  std::ostringstream out;
  {
    Progress p("rmai test", out, true);
    p.callback()(1, 4);
    p.callback()(2, 4);  // within 0.5 s: not drawn
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    p.callback()(3, 4);
    EXPECT_EQ(lines(out.str()), 0u) << out.str();
    const std::string drawn = out.str();
    EXPECT_EQ(std::count(drawn.begin(), drawn.end(), '\r'), 2) << drawn;
    EXPECT_EQ(out.str().find("2/4"), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("3/4 (75%)"), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("ETA"), std::string::npos) << out.str();
    p.note("stage two");  // clears the status line, stays
    EXPECT_NE(out.str().find("\r\033[Krmai test: stage two\n"), std::string::npos) << out.str();
    p.status("again", true);
  }
  EXPECT_EQ(out.str().back(), '\n');  // the destructor ends the status line
}

TEST(Progress, ClockText) {
  EXPECT_EQ(rmai::cli::clock_text(65), "1:05");
  EXPECT_EQ(rmai::cli::clock_text(7384), "2:03:04");
  EXPECT_EQ(rmai::cli::clock_text(-3), "0:00");
}

}  // namespace
