// Hostile and careless input, class by class: every case exits 2 with a message naming the option,
// key or file, never with a signal, and leaves nothing behind (no results, no SimGrid backtrace
// files in the working directory).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "cli_support.hpp"

namespace rmai {
namespace {

using testing::kQuickstart;
using testing::run;
namespace fs = std::filesystem;

class Hardening : public testing::TempDirTest {
 protected:
  // Runs rmai in the test's directory and checks the class's promise.
  void expect_refused(const std::vector<std::string>& args, const std::string& named) {
    const auto r = run(args, dir_);
    EXPECT_FALSE(r.signaled) << r.err;
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << "expected \"" << named << "\" in: " << r.err;
    EXPECT_EQ(r.err.find("Backtrace"), std::string::npos) << r.err;
    for (const auto& entry : fs::directory_iterator(dir_))
      ADD_FAILURE() << "left behind: " << entry.path() << " after " << args.back();
  }
  std::vector<std::string> run_args(std::vector<std::string> extra) {
    std::vector<std::string> args{"run", kQuickstart.string(), "--set", "trace.tokens=2", "--out",
                                  (dir_ / "out").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
};

TEST_F(Hardening, BadSimGridOptionsAreExitTwoWithoutAbortOrBacktraceFile) {
  for (const std::string option :
       {"--cfg=garbage", "--cfg=help", "--cfg=network/model:NoSuchModel", "--cfg=nosuch/key:1",
        "--cfg=network/TCP-gamma:abc", "--cfg=network/crosstraffic:maybe", "--log=garbage", "--log=root.thres:nope",
        "--log=no.such.category:debug:extra"})
    expect_refused(run_args({option}), option);
}

TEST_F(Hardening, AGoodSimGridOptionStillReachesTheEngine) {
  const auto r = run(run_args({"--cfg=network/model:LV08"}), dir_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "out" / "summary.json"));
}

TEST_F(Hardening, ValuesBeyondTheirBoundAfterTheUnitAreExitTwo) {
  for (const std::string set :
       {"platform.nic.bandwidth=1e300Tbps", "platform.nvme.capacity=1e308TB", "platform.nic.latency=1e308s",
        "platform.pcie.latency=2e6s", "emul.timeout=1e10s", "platform.gpu.flops=1e308", "platform.prices.gpu_node=1e31",
        "seed=9223372036854775808", "nodes=4294967296", "platform.nic.latency=-1e7s"}) {
    const std::string key = set.substr(0, set.find('='));
    expect_refused(run_args({"--set", set}), key);
  }
}

TEST_F(Hardening, IntegersStayExact) {
  // Seeds above 2^53 differ by one: as doubles they would be the same seed.
  const auto resolved = [&](const std::string& seed) {
    const auto r = run({"check", kQuickstart.string(), "--set", "seed=" + seed}, dir_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  EXPECT_NE(resolved("9007199254740993").find("seed: 9007199254740993"), std::string::npos);
  EXPECT_NE(resolved("9223372036854775807").find("seed: 9223372036854775807"), std::string::npos);
}

}  // namespace
}  // namespace rmai
