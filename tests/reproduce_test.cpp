// The paper reproduction end to end: every experiment validates, and `rmai reproduce --quick` writes
// every figure and a report whose claims are filled from the results.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
    if (entry.path().extension() != ".yaml" || entry.path().stem() == "quickstart") continue;
    if (entry.path().stem() == "validate") continue;  // not a sweep: rmai validate, below
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
  EXPECT_THAT(report, HasSubstr("## Measured on this machine"));
  if (validated) {
    EXPECT_THAT(report, HasSubstr("| rmai | ")) << report;
  }
  EXPECT_THAT(html, HasSubstr("data:image/png;base64,"));
  // Figure 6's note explains prefetching with this run's numbers.
  EXPECT_THAT(report, HasSubstr("stall per token"));
}

}  // namespace
