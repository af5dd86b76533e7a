// End-to-end tests of the rmai command line (docs/interfaces.md): run, check, list, result files,
// determinism and the documented overrides. Every run is tiny (16 synthetic tokens).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "spec/tiers.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using rmai::testing::Result;
using rmai::testing::run;

using rmai::testing::kQuickstart;
using rmai::testing::kSourceDir;
constexpr double kMixtralExpertBytes = 352321536;  // 3 * 4096 * 14336 * 2 bytes
constexpr int kMixtralMoeLayers = 32;
constexpr int kMixtralTopK = 2;
// Every defined tier (models/tiers): a new one is run by the tests below without being listed here.
const std::vector<std::string> kTiers = rmai::spec::tier_names();

std::string describe(const Result& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout ---\n" + r.out.substr(0, 4000) +
         "\n--- stderr ---\n" + r.err.substr(0, 4000);
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(text);
  while (std::getline(in, field, separator)) fields.push_back(field);
  if (!text.empty() && text.back() == separator) fields.emplace_back();
  return fields;
}

// The git revision in config.resolved.yaml may legitimately change between two runs while others
// edit or commit the working tree ("-dirty"); everything else must be byte-identical.
std::string without_git_revision(const std::string& yaml) {
  std::string out;
  for (const auto& line : lines_of(yaml))
    if (line.find("git_revision:") == std::string::npos) out += line + "\n";
  return out;
}

class CliTest : public rmai::testing::TempDirTest {
 protected:
  // `rmai run quickstart.yaml --set trace.tokens=16 <extra> --out DIR/<out>`; asserts success.
  fs::path run_quickstart(const std::string& out, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"run", kQuickstart.string(), "--set", "trace.tokens=16"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("--out");
    args.push_back((dir_ / out).string());
    const Result r = run(args);
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_TRUE(fs::exists(dir_ / out / "summary.json")) << describe(r);
    return dir_ / out;
  }

  static json summary(const fs::path& out) { return json::parse(slurp(out / "summary.json")); }

  // Rows of switches.csv without the header.
  static std::vector<std::string> switch_rows(const fs::path& out) {
    auto lines = lines_of(slurp(out / "switches.csv"));
    if (!lines.empty()) lines.erase(lines.begin());
    return lines;
  }
};

// A valid Mixtral trace: `tokens` tokens of sequence 0, 32 rows each.
std::string mixtral_trace(int tokens) {
  std::string csv = "seq,token,layer,experts,weights\n";
  for (int t = 0; t < tokens; ++t)
    for (int layer = 0; layer < kMixtralMoeLayers; ++layer)
      csv += "0," + std::to_string(t) + "," + std::to_string(layer) + "," + std::to_string((t + layer) % 8) + ";" +
             std::to_string((t + layer + 3) % 8) + ",\n";
  return csv;
}

TEST_F(CliTest, RunWritesTheResultFilesWithConsistentSummary) {
  const fs::path out = run_quickstart("out");
  ASSERT_TRUE(fs::exists(out / "switches.csv"));
  ASSERT_TRUE(fs::exists(out / "config.resolved.yaml"));
  const json s = summary(out);

  for (const char* key : {"schema", "mode", "model", "tier", "nodes", "tokens", "expert_accesses", "expert_switches",
                          "expert_switch_s", "token_latency_s", "tokens_per_s", "cache_hit_rate", "page_faults",
                          "user_kernel_transitions", "bytes", "simulated_time_s", "wall_time_s"})
    EXPECT_TRUE(s.contains(key)) << "summary.json lacks \"" << key << "\"";
  for (const char* key : {"mean", "p50", "p95", "p99", "max"})
    EXPECT_TRUE(s["expert_switch_s"].contains(key)) << "expert_switch_s lacks " << key;
  for (const char* key : {"mean", "p50", "p95", "p99"})
    EXPECT_TRUE(s["token_latency_s"].contains(key)) << "token_latency_s lacks " << key;
  for (const char* key : {"remote", "disk", "cxl", "pcie"})
    EXPECT_TRUE(s["bytes"].contains(key)) << "bytes lacks " << key;
  if (HasFailure()) return;

  EXPECT_EQ(s["schema"], 1);
  EXPECT_EQ(s["mode"], "sim");
  EXPECT_EQ(s["model"], "mixtral-8x7b");
  EXPECT_EQ(s["tier"], "rmai");
  EXPECT_EQ(s["nodes"], 1);
  EXPECT_EQ(s["tokens"], 16);
  const auto accesses = s["expert_accesses"].get<std::int64_t>();
  const auto switches = s["expert_switches"].get<std::int64_t>();
  EXPECT_EQ(accesses, 16 * kMixtralMoeLayers * kMixtralTopK);
  EXPECT_GT(switches, 0);
  EXPECT_LE(switches, accesses);

  const double hit_rate = s["cache_hit_rate"].get<double>();
  EXPECT_GE(hit_rate, 0.0);
  EXPECT_LE(hit_rate, 1.0);
  // One node: every miss is one switch.
  EXPECT_NEAR(hit_rate, 1.0 - double(switches) / double(accesses), 1e-9);

  // rmai with region_chunk: expert maps a whole expert with one fault.
  EXPECT_EQ(s["page_faults"].get<double>(), double(switches));
  EXPECT_DOUBLE_EQ(s["bytes"]["pcie"].get<double>(), double(switches) * kMixtralExpertBytes);
  EXPECT_DOUBLE_EQ(s["bytes"]["remote"].get<double>(), double(switches) * kMixtralExpertBytes);
  EXPECT_EQ(s["bytes"]["disk"].get<double>(), 0.0);
  EXPECT_EQ(s["bytes"]["cxl"].get<double>(), 0.0);

  const auto& sw = s["expert_switch_s"];
  EXPECT_GT(sw["p50"].get<double>(), 0.0);
  EXPECT_LE(sw["p50"].get<double>(), sw["p95"].get<double>());
  EXPECT_LE(sw["p95"].get<double>(), sw["p99"].get<double>());
  EXPECT_LE(sw["p99"].get<double>(), sw["max"].get<double>());
  EXPECT_LE(sw["mean"].get<double>(), sw["max"].get<double>());
  const auto& tl = s["token_latency_s"];
  EXPECT_GT(tl["p50"].get<double>(), 0.0);
  EXPECT_LE(tl["p50"].get<double>(), tl["p95"].get<double>());
  EXPECT_LE(tl["p95"].get<double>(), tl["p99"].get<double>());
  EXPECT_GT(s["tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(s["simulated_time_s"].get<double>(), 0.0);
  EXPECT_GE(s["wall_time_s"].get<double>(), 0.0);

  // switches.csv: the documented header, one row per switch, 9 fields each.
  const auto lines = lines_of(slurp(out / "switches.csv"));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front(), "node,token,layer,expert,tier,start_s,end_s,bytes,faults");
  const auto rows = switch_rows(out);
  EXPECT_EQ(static_cast<std::int64_t>(rows.size()), switches);
  for (const auto& row : rows) {
    const auto f = split(row, ',');
    ASSERT_EQ(f.size(), 9u) << row;
    EXPECT_EQ(f[0], "0") << row;
    EXPECT_LT(std::stoi(f[1]), 16) << row;
    EXPECT_LT(std::stoi(f[2]), kMixtralMoeLayers) << row;
    EXPECT_LT(std::stoi(f[3]), 8) << row;
    EXPECT_EQ(f[4], "rmai") << row;
    EXPECT_LE(std::stod(f[5]), std::stod(f[6])) << row;
    EXPECT_DOUBLE_EQ(std::stod(f[7]), kMixtralExpertBytes) << row;
    EXPECT_EQ(f[8], "1") << row;
    if (HasFailure()) break;
  }

  // config.resolved.yaml: the whole experiment plus provenance.
  const std::string resolved = slurp(out / "config.resolved.yaml");
  for (const char* text : {"model: mixtral-8x7b", "tier: rmai", "gpu_experts: 64", "tokens: 16", "bandwidth: 200Gbps",
                           "provenance:", "seed: 1", "git_revision:", "simgrid_version:"})
    EXPECT_NE(resolved.find(text), std::string::npos) << "config.resolved.yaml lacks \"" << text << "\"\n" << resolved;
}

// A directory given with a trailing slash is the same directory: the switch log that streamed into
// it is committed there (it was a logic_error once), plain or compressed.
TEST_F(CliTest, OutWithATrailingSlashWritesTheSameFiles) {
  for (const std::string switches : {"all", "sample:4,zstd"}) {
    const fs::path out = dir_ / ("slash-" + std::to_string(switches.size()));
    const Result r = run({"run", kQuickstart.string(), "--set", "trace.tokens=16", "--switches", switches, "--out",
                          out.string() + "/"});
    EXPECT_EQ(r.exit_code, 0) << switches << ": " << describe(r);
    EXPECT_TRUE(fs::exists(out / "summary.json")) << switches;
    EXPECT_TRUE(fs::exists(out / (switches == "all" ? "switches.csv" : "switches.csv.zst"))) << switches;
  }
}

TEST_F(CliTest, SameInputsAndSeedGiveIdenticalResults) {
  const fs::path a = run_quickstart("a", {"--seed", "7"});
  const fs::path b = run_quickstart("b", {"--seed", "7"});
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(slurp(a / "switches.csv"), slurp(b / "switches.csv"));
  EXPECT_EQ(without_git_revision(slurp(a / "config.resolved.yaml")),
            without_git_revision(slurp(b / "config.resolved.yaml")));

  // summary.json: identical except the host-dependent wall_time_s.
  json sa = summary(a);
  json sb = summary(b);
  ASSERT_TRUE(sa.contains("wall_time_s"));
  ASSERT_TRUE(sb.contains("wall_time_s"));
  sa.erase("wall_time_s");
  sb.erase("wall_time_s");
  EXPECT_EQ(sa, sb) << sa.dump(2) << "\n" << sb.dump(2);
  const auto la = lines_of(slurp(a / "summary.json"));
  const auto lb = lines_of(slurp(b / "summary.json"));
  ASSERT_EQ(la.size(), lb.size());
  for (std::size_t i = 0; i < la.size(); ++i)
    if (la[i].find("\"wall_time_s\"") == std::string::npos) {
      EXPECT_EQ(la[i], lb[i]) << "summary.json line " << i + 1;
    }
}

TEST_F(CliTest, DifferentSeedChangesTheSwitches) {
  const fs::path a = run_quickstart("a", {"--seed", "1"});
  const fs::path b = run_quickstart("b", {"--seed", "2"});
  ASSERT_FALSE(HasFailure());
  EXPECT_NE(slurp(a / "switches.csv"), slurp(b / "switches.csv"));
  EXPECT_NE(slurp(b / "config.resolved.yaml").find("seed: 2"), std::string::npos);
}

TEST_F(CliTest, ResolvedConfigRunsAgainWithTheSameSwitches) {
  const fs::path a = run_quickstart("a", {"--set", "memory.tier=page4k", "--set", "cache.gpu_experts=32"});
  ASSERT_FALSE(HasFailure());
  const Result r = run({"run", (a / "config.resolved.yaml").string(), "--out", (dir_ / "b").string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(slurp(a / "switches.csv"), slurp(dir_ / "b" / "switches.csv"));
  json sa = summary(a);
  json sb = summary(dir_ / "b");
  sa.erase("wall_time_s");
  sb.erase("wall_time_s");
  EXPECT_EQ(sa, sb);
  EXPECT_EQ(sb["tier"], "page4k");
  EXPECT_EQ(without_git_revision(slurp(a / "config.resolved.yaml")),
            without_git_revision(slurp(dir_ / "b" / "config.resolved.yaml")));
}

TEST_F(CliTest, ResolvedConfigWithATraceFileRunsAgainFromAnotherDirectory) {
  write("exp/trace.csv", mixtral_trace(3));
  write("exp/exp.yaml", "model: mixtral-8x7b\ncache: {gpu_experts: 16}\ntrace: {file: trace.csv}\n");
  // Run with a relative experiment path, as a user would from the shell.
  const Result first = run({"run", "exp/exp.yaml", "--out", "out1"}, dir_);
  ASSERT_EQ(first.exit_code, 0) << describe(first);
  EXPECT_EQ(summary(dir_ / "out1")["tokens"], 3);
  const Result again = run({"run", (dir_ / "out1" / "config.resolved.yaml").string(), "--out",
                            (dir_ / "out2").string()},
                           fs::temp_directory_path());
  ASSERT_EQ(again.exit_code, 0) << describe(again);
  EXPECT_EQ(slurp(dir_ / "out1" / "switches.csv"), slurp(dir_ / "out2" / "switches.csv"));
}

TEST_F(CliTest, TraceFileIsReplayed) {
  write("trace.csv", mixtral_trace(4));
  const fs::path exp = write("exp.yaml", "model: mixtral-8x7b\ncache: {gpu_experts: 16}\ntrace: {file: trace.csv}\n");
  const Result r = run({"run", exp.string(), "--out", (dir_ / "out").string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const json s = summary(dir_ / "out");
  EXPECT_EQ(s["tokens"], 4);
  EXPECT_EQ(s["expert_accesses"], 4 * kMixtralMoeLayers * kMixtralTopK);
  EXPECT_EQ(static_cast<std::int64_t>(switch_rows(dir_ / "out").size()), s["expert_switches"].get<std::int64_t>());
}

TEST_F(CliTest, EveryTierRuns) {
  for (const auto& tier : kTiers) {
    SCOPED_TRACE(tier);
    const fs::path out = run_quickstart("out-" + tier, {"--set", "memory.tier=" + tier});
    if (!fs::exists(out / "summary.json")) continue;
    const json s = summary(out);
    EXPECT_EQ(s["tier"], tier);
    const double switches = s["expert_switches"].get<double>();
    const double moved = switches * kMixtralExpertBytes;
    EXPECT_GT(switches, 0);
    EXPECT_DOUBLE_EQ(s["bytes"]["pcie"].get<double>(), moved);
    // The medium decides the counter (spec/tiers.hpp), written out here independently of that code.
    const bool remote = tier == "rmai" || tier == "page4k";
    const bool disk = tier == "disk-mmap" || tier == "disk-read";
    const bool cxl = tier == "cxl" || tier == "cxl-pool";
    EXPECT_DOUBLE_EQ(s["bytes"]["remote"].get<double>(), remote ? moved : 0.0);
    EXPECT_DOUBLE_EQ(s["bytes"]["disk"].get<double>(), disk ? moved : 0.0);
    EXPECT_DOUBLE_EQ(s["bytes"]["cxl"].get<double>(), cxl ? moved : 0.0);
    const double faults = s["page_faults"].get<double>();
    if (tier == "dram" || cxl || tier == "disk-read") {
      EXPECT_EQ(faults, 0.0);
    }
    if (tier == "rmai") {
      EXPECT_EQ(faults, switches);
    }
    if (tier == "page4k" || tier == "disk-mmap") {
      EXPECT_GT(faults, switches);
    }
    for (const auto& row : switch_rows(out)) {
      const auto f = split(row, ',');
      ASSERT_EQ(f.size(), 9u) << row;
      ASSERT_EQ(f[4], tier) << row;
    }
  }
}

TEST_F(CliTest, NodesShareThePoolAndMultiplyTokens) {
  const fs::path out = run_quickstart("out", {"--set", "nodes=3"});
  ASSERT_FALSE(HasFailure());
  const json s = summary(out);
  EXPECT_EQ(s["nodes"], 3);
  EXPECT_EQ(s["tokens"], 3 * 16);
  EXPECT_EQ(s["expert_accesses"], 3 * 16 * kMixtralMoeLayers * kMixtralTopK);
  std::vector<bool> seen(3, false);
  for (const auto& row : switch_rows(out)) {
    const int node = std::stoi(split(row, ',')[0]);
    ASSERT_GE(node, 0);
    ASSERT_LT(node, 3);
    seen[node] = true;
  }
  EXPECT_TRUE(seen[0] && seen[1] && seen[2]) << "every node switches experts";
}

TEST_F(CliTest, SlowerNicMakesRmaiSwitchesSlower) {
  const fs::path slow = run_quickstart("slow", {"--set", "platform.nic.bandwidth=100Gbps"});
  const fs::path fast = run_quickstart("fast", {"--set", "platform.nic.bandwidth=200Gbps"});
  ASSERT_FALSE(HasFailure());
  const double p50_slow = summary(slow)["expert_switch_s"]["p50"].get<double>();
  const double p50_fast = summary(fast)["expert_switch_s"]["p50"].get<double>();
  EXPECT_GT(p50_slow, p50_fast);
  EXPECT_NE(slurp(slow / "config.resolved.yaml").find("bandwidth: 100Gbps"), std::string::npos);
}

TEST_F(CliTest, CheckPrintsTheResolvedConfig) {
  const Result r = run({"check", kQuickstart.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("tier: rmai"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bandwidth: 200Gbps"), std::string::npos) << r.out;  // the default platform's NIC
  EXPECT_NE(r.out.find("model: mixtral-8x7b"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gpu_experts: 64"), std::string::npos) << r.out;

  const Result set = run({"check", kQuickstart.string(), "--set", "platform.nic.bandwidth=100Gbps", "--set",
                          "memory.tier=disk-read"});
  ASSERT_EQ(set.exit_code, 0) << describe(set);
  EXPECT_NE(set.out.find("bandwidth: 100Gbps"), std::string::npos) << set.out;
  EXPECT_NE(set.out.find("tier: disk-read"), std::string::npos) << set.out;
}

TEST_F(CliTest, ListNamesEverythingSelectable) {
  const Result r = run({"list"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  std::vector<std::string> names = kTiers;
  for (const char* name : {"lru", "lfu", "mixtral-8x7b", "region_chunk", "fault_batch", "gpu_experts",
                           "bandwidth", "connectx-6-200g", "default"})
    names.emplace_back(name);
  for (const auto& name : names) EXPECT_NE(r.out.find(name), std::string::npos) << "rmai list lacks " << name;
}

TEST_F(CliTest, SimGridOptionsPassThrough) {
  const fs::path out = run_quickstart("out", {"--cfg=network/model:CM02", "--log=root.thres:critical"});
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(summary(out)["tier"], "rmai");
}

TEST_F(CliTest, UsageAndUnknownCommand) {
  const Result help = run({"--help"});
  EXPECT_EQ(help.exit_code, 0) << describe(help);
  EXPECT_NE(help.out.find("Usage: rmai"), std::string::npos) << help.out;
  for (const char* command : {"run", "check", "sweep", "reproduce", "memd", "validate", "list", "trace", "--mode emul"})
    EXPECT_NE(help.out.find(command), std::string::npos) << "rmai --help lacks " << command << "\n" << help.out;
  const Result none = run({});
  EXPECT_EQ(none.exit_code, 2) << describe(none);
  const Result unknown = run({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2) << describe(unknown);
  EXPECT_NE(unknown.err.find("frobnicate"), std::string::npos) << unknown.err;
}

// Every command's help is generated from its options: --help and `rmai help CMD` print the same.
TEST_F(CliTest, EveryCommandHasHelp) {
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> commands{
      {{"run"}, {"Usage: rmai run", "EXP.yaml", "--set", "--seed", "--mode", "--out", "--cfg", "--log"}},
      {{"check"}, {"Usage: rmai check", "--set"}},
      {{"sweep"}, {"Usage: rmai sweep", "--sweep", "--set", "--quick", "--jobs", "--out", "--emit", "--point", "--collect"}},
      {{"reproduce"}, {"Usage: rmai reproduce", "--out", "--quick", "--jobs", "--only"}},
      {{"memd"}, {"Usage: rmai memd", "--listen", "--secret-file", "--ready-fd"}},
      {{"validate"}, {"Usage: rmai validate", "--out", "--tiers", "--platform"}},
      {{"list"}, {"Usage: rmai list"}},
      {{"trace"}, {"Usage: rmai trace", "import", "convert", "gen", "fit", "stats"}},
      {{"trace", "import"}, {"Usage: rmai trace import", "--format", "-o,--out", "--model"}},
      {{"trace", "convert"}, {"Usage: rmai trace convert", "-o,--out", "--model"}},
      {{"trace", "gen"}, {"Usage: rmai trace gen", "--shape", "--generator", "--tokens", "--sequences", "--seed"}},
      {{"trace", "fit"}, {"Usage: rmai trace fit", "--counts", "--pairs", "--where", "--reuse", "--description"}},
      {{"trace", "stats"}, {"Usage: rmai trace stats", "--json", "--windows"}},
  };
  for (const auto& [command, expected] : commands) {
    std::vector<std::string> args = command;
    args.push_back("--help");
    const Result help = run(args);
    EXPECT_EQ(help.exit_code, 0) << describe(help);
    for (const auto& text : expected) EXPECT_NE(help.out.find(text), std::string::npos) << text << "\n" << help.out;
    std::vector<std::string> via_help{"help"};
    via_help.insert(via_help.end(), command.begin(), command.end());
    const Result same = run(via_help);
    EXPECT_EQ(same.exit_code, 0) << describe(same);
    EXPECT_EQ(same.out, help.out);
  }
  const Result nosuch = run({"help", "nosuch"});
  EXPECT_EQ(nosuch.exit_code, 2) << describe(nosuch);
  EXPECT_NE(nosuch.err.find("nosuch"), std::string::npos) << nosuch.err;
}

TEST_F(CliTest, VersionNamesEveryComponent) {
  const Result r = run({"--version"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  for (const char* part : {"rmai 0.", "git ", "SimGrid 3.", "libfabric 1."})
    EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
}

// Bad options name the option and the command, exit 2, one line.
TEST_F(CliTest, BadOptionsNameTheOption) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"run", kQuickstart.string(), "--frobnicate"}, "--frobnicate: unknown option (rmai run --help)"},
      {{"sweep", kQuickstart.string(), "--jobs"}, "--jobs: needs a value (rmai sweep --help)"},
      {{"sweep", kQuickstart.string(), "--jobs", "x"}, "--jobs: 'x' is not a non-negative integer"},
      {{"run", kQuickstart.string(), "--out", "--set", "nodes=2"}, "--out: needs a value, not the option --set (rmai run --help)"},
      {{"run"}, "no experiment file given (rmai run --help)"},
      {{"validate", kQuickstart.string()}, "--out: is required (rmai validate --help)"},
      {{"trace", "stats"}, "no trace given (rmai trace stats --help)"},
      {{"trace", "gen", "--tokens", "5"}, "--out: is required (rmai trace gen --help)"},
      {{"list", "--frobnicate"}, "--frobnicate: unknown option (rmai list --help)"},
      {{"--frobnicate"}, "--frobnicate: unknown option (rmai --help)"},
  };
  for (const auto& [args, expected] : cases) {
    const Result r = run(args);
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    EXPECT_EQ(r.err, "rmai: error: " + expected + "\n") << describe(r);
  }
}

// rmai list SECTION --json: the tier catalog in presentation order, and parameters with dotted keys
// and the values their presets set.
TEST_F(CliTest, ListSectionsAsJson) {
  const Result tiers = run({"list", "tiers", "--json"});
  ASSERT_EQ(tiers.exit_code, 0) << describe(tiers);
  const json t = json::parse(tiers.out);
  ASSERT_EQ(t.size(), 1u) << tiers.out;  // only the section asked for
  ASSERT_TRUE(t["tiers"].is_array());
  std::vector<std::string> names;
  for (const auto& tier : t["tiers"]) {
    for (const char* key : {"name", "label", "colour", "medium", "description", "no_emulation"})
      EXPECT_TRUE(tier[key].is_string()) << key << " in " << tier.dump();
    EXPECT_EQ(tier["emulated"].get<bool>(), tier["no_emulation"].get<std::string>().empty()) << tier.dump();
    names.push_back(tier["name"]);
  }
  for (const auto& name : kTiers) EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;

  const Result params = run({"list", "parameters", "--json"});
  ASSERT_EQ(params.exit_code, 0) << describe(params);
  std::map<std::string, json> by_key;
  const json all = json::parse(params.out);
  for (const auto& p : all["parameters"]) by_key[p["key"]] = p;
  ASSERT_TRUE(by_key.count("platform.nic.bandwidth")) << params.out.substr(0, 2000);
  const json& nic = by_key["platform.nic.bandwidth"];
  EXPECT_EQ(nic["kind"], "bandwidth");
  EXPECT_EQ(nic["unit"], "B/s");
  EXPECT_EQ(nic["presets"]["connectx-7-400g"], "400Gbps");
  EXPECT_EQ(nic["presets"]["connectx-6-200g"], "200Gbps");
  EXPECT_EQ(by_key["platform.nic"]["presets"]["default"], "connectx-6-200g");
  EXPECT_EQ(by_key["memory.rmai.fault_batch"]["kind"], "count");
  EXPECT_EQ(by_key["cache.gpu_experts"]["required"], true);
  EXPECT_EQ(by_key["cache.policy"]["default"], "lru");

  const Result text = run({"list", "parameters"});
  EXPECT_NE(text.out.find("platform.nic.bandwidth"), std::string::npos);
  EXPECT_NE(text.out.find("connectx-7-400g 400Gbps"), std::string::npos);
  EXPECT_EQ(text.out.find("models (models/moe)"), std::string::npos);  // one section only

  const Result bad = run({"list", "colours"});
  EXPECT_EQ(bad.exit_code, 2) << describe(bad);
  EXPECT_NE(bad.err.find("colours: no such section"), std::string::npos) << bad.err;
}

}  // namespace
