// The paper reproduction end to end: every experiment validates, and `rmai reproduce --quick` writes
// every figure and a report whose claims are filled from the results.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "cli_support.hpp"

namespace {

using rmai::testing::run;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const fs::path kSource = RMAI_SOURCE_DIR;

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Experiments, EveryYamlPassesCheck) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(kSource / "experiments")) {
    if (entry.path().extension() != ".yaml") continue;
    const auto r = run({"check", entry.path().string()});
    EXPECT_EQ(r.exit_code, 0) << entry.path() << ": " << r.err;
    // Each paper experiment names its description (experiments/<name>.md) in its header comment.
    if (entry.path().stem() != "quickstart") {
      std::smatch md;
      const std::string text = read(entry.path());
      ASSERT_TRUE(std::regex_search(text, md, std::regex("experiments/([a-z0-9-]+\\.md)"))) << entry.path();
      EXPECT_TRUE(fs::exists(kSource / "experiments" / md[1].str())) << md[1];
    }
    ++checked;
  }
  EXPECT_GE(checked, 9);
}

class Reproduce : public rmai::testing::TempDirTest {};

TEST_F(Reproduce, QuickWritesEveryFigureAndFillsTheClaims) {
  const auto r = run({"reproduce", "--quick", "--out", (dir_ / "out").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path out = dir_ / "out";
  int scripts = 0;
  for (const auto& entry : fs::directory_iterator(kSource / "plots")) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("fig") || entry.path().extension() != ".py") continue;
    ++scripts;
    for (const char* ext : {".png", ".pdf"}) {
      const fs::path figure = out / "figures" / (entry.path().stem().string() + ext);
      EXPECT_TRUE(fs::exists(figure) && fs::file_size(figure) > 1000) << figure;
    }
  }
  EXPECT_GE(scripts, 6);
  for (const auto& entry : fs::directory_iterator(kSource / "experiments")) {
    // The experiments without a sweep (quickstart, validate: below, validate-sharing, scale) are no
    // part of the reproduction.
    if (entry.path().extension() != ".yaml" || !YAML::LoadFile(entry.path().string())["sweep"]) continue;
    EXPECT_TRUE(fs::exists(out / entry.path().stem() / "results.csv")) << entry.path().stem();
  }
  // The emulator against the simulator on this machine, or the reason it could not run.
  const bool validated = fs::exists(out / "validate" / "validation.csv");
  EXPECT_TRUE(validated || fs::exists(out / "validate" / "skipped.txt"));
  const std::string report = read(out / "report.md");
  // Every claim of plots/claims.json is checked, carries a measured number (a ratio, a count or a
  // size) and has a verdict; report.html colours it by its level.
  EXPECT_THAT(report, Not(HasSubstr("no results")));
  const auto record = nlohmann::json::parse(read(out / "report.json"));
  const auto definitions = nlohmann::json::parse(read(kSource / "plots" / "claims.json"));
  ASSERT_EQ(record["claims"].size(), definitions["claims"].size());
  const std::string html = read(out / "report.html");
  for (std::size_t i = 0; i < record["claims"].size(); ++i) {
    const auto& claim = record["claims"][i];
    EXPECT_EQ(claim["id"], definitions["claims"][i]["id"]);
    EXPECT_NE(claim["level"], "no-results") << claim.dump();
    EXPECT_TRUE(std::regex_search(claim["measured"][0].get<std::string>(), std::regex("[0-9]"))) << claim.dump();
    EXPECT_THAT(report, HasSubstr("| " + claim["verdict"].get<std::string>() + " |"));
    EXPECT_THAT(html, HasSubstr("<td class='" + claim["level"].get<std::string>() + "'>" +
                                claim["verdict"].get<std::string>() + "</td>"));
  }
  EXPECT_EQ(record["mode"], "quick");
  EXPECT_EQ(record["sets"], nlohmann::json::array()) << "no --set: recorded as none";
  EXPECT_THAT(report, HasSubstr("## Measured on this machine"));
  if (validated) {
    EXPECT_THAT(report, HasSubstr("| rmai | ")) << report;
  }
  EXPECT_THAT(html, HasSubstr("data:image/png;base64,"));
  // Figure 6's note explains prefetching with this run's numbers.
  EXPECT_THAT(report, HasSubstr("stall per token"));
}

// The rmai point's summary.json of a faults sweep in `dir`.
nlohmann::json rmai_point(const fs::path& dir) {
  const auto sweep = nlohmann::json::parse(read(dir / "sweep.json"));
  for (const auto& p : sweep["points"])
    if (p["set"][0] == "memory.tier=rmai") return nlohmann::json::parse(read(dir / p["name"].get<std::string>() / "summary.json"));
  return {};
}

TEST_F(Reproduce, SetGoesToEverySweepAndIsRecorded) {
  const fs::path out = dir_ / "out";
  const std::vector<std::string> base{"reproduce", "--quick", "--only", "faults", "--only", "nic-latency", "--out", out.string()};
  auto with = base;
  with.insert(with.end(), {"--set", "platform.nic.bandwidth=400Gbps", "--set", "cache.policy=lfu"});
  auto r = run(with);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto recorded = nlohmann::json::parse(read(out / "reproduce.json"));
  EXPECT_EQ(recorded["sets"], (nlohmann::json{"platform.nic.bandwidth=400Gbps", "cache.policy=lfu"}));
  EXPECT_EQ(recorded["quick"], true);
  for (const char* experiment : {"faults", "nic-latency"}) {
    const auto sets = nlohmann::json::parse(read(out / experiment / "sweep.json"))["sets"].dump();
    EXPECT_THAT(sets, HasSubstr("platform.nic.bandwidth=400Gbps")) << experiment;
  }
  // It took effect: the same quick sweep without --set switches experts more slowly over 200 Gb/s.
  ASSERT_EQ(run({"sweep", (kSource / "experiments" / "faults.yaml").string(), "--quick", "--out", (dir_ / "plain").string()})
                .exit_code, 0);
  const auto fast = rmai_point(out / "faults"), plain = rmai_point(dir_ / "plain");
  EXPECT_LT(double(fast["expert_switch_s"]["p50"]), 0.8 * double(plain["expert_switch_s"]["p50"]));  // 23.8 ms vs 30.9 ms
  EXPECT_EQ(fast["cache_policy"], "lfu");
  EXPECT_THAT(read(out / "report.md"), HasSubstr("`platform.nic.bandwidth=400Gbps`, `cache.policy=lfu`"));

  // Resumed with the same options: nothing runs again. With others: refused, naming the option.
  const auto summary = out / "faults" / "p0000" / "summary.json";
  const auto written = fs::last_write_time(summary);
  r = run(with);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fs::last_write_time(summary), written);
  for (const auto& other : {base, [&] { auto v = base; v.insert(v.end(), {"--set", "platform.nic.bandwidth=100Gbps"}); return v; }()}) {
    r = run(other);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr("--set: " + out.string() + " holds a reproduction with --quick --set "
                                 "platform.nic.bandwidth=400Gbps --set cache.policy=lfu"));
  }
  auto full = with;
  full.erase(full.begin() + 1);  // without --quick
  r = run(full);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--quick: "));
  EXPECT_EQ(nlohmann::json::parse(read(out / "reproduce.json")), recorded);
  EXPECT_EQ(fs::last_write_time(summary), written);
}

TEST_F(Reproduce, BadSetIsRefusedBeforeAnythingRuns) {
  const fs::path out = dir_ / "out";
  for (const auto& [set, named] : std::vector<std::pair<std::string, std::string>>{
           {"nosuch.key=1", "--set: nosuch: unknown key"},
           {"platform.nic.bandwidth=fast", "--set: platform.nic.bandwidth: bad bandwidth"},
           {"novalue", "--set novalue: expected KEY=VALUE"},
           // this machine's platform has no GPU memory for the paper's 64-slot caches: the file and key
           {"platform=this-vm", "cache.gpu_experts: does not fit in HBM"}}) {
    const auto r = run({"reproduce", "--quick", "--set", set, "--out", out.string()});
    EXPECT_EQ(r.exit_code, 2) << set << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(named)) << set;
    EXPECT_FALSE(fs::exists(out)) << set << ": it wrote something";
  }
}

}  // namespace
