// Bad input to `rmai run` / `rmai check`: each case must exit with code 2 and a message
// "rmai: error: <file>:<line>: <key>: <what>" (or "--set: <key>" for command-line values) that names
// what is wrong, without crashing and without writing results.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.hpp"

namespace fs = std::filesystem;

namespace {

using rmai::testing::Result;
using rmai::testing::run;
constexpr int kMixtralMoeLayers = 32;

// Mixtral trace rows: token `t` of sequence 0, layers [0, layers), experts from `experts(layer)`.
template <typename Experts>
std::string token_rows(int t, int layers, Experts experts) {
  std::string rows;
  for (int layer = 0; layer < layers; ++layer)
    rows += "0," + std::to_string(t) + "," + std::to_string(layer) + "," + experts(layer) + ",\n";
  return rows;
}

const auto kFine = [](int) { return std::string("3;4"); };

// Token `t` of sequence 0 in a trace with the phase column, experts 3 and 4, weights empty.
std::string phase_rows(int t, int layers, const std::string& phase) {
  std::string rows;
  for (int layer = 0; layer < layers; ++layer)
    rows += "0," + std::to_string(t) + "," + std::to_string(layer) + ",3;4,," + phase + "\n";
  return rows;
}
const std::string kPhaseHeader = "seq,token,layer,experts,weights,phase\n";
const std::string kHeader = "seq,token,layer,experts,weights\n";

struct File {
  std::string name;
  std::string content;
};

struct Case {
  std::string name;
  std::string yaml;                     // written to <name>.yaml unless empty (then no experiment file)
  std::vector<std::string> args;        // after "run <name>.yaml"; "{file}" is replaced by its path
  std::vector<std::string> expected;    // substrings of stderr; "{file}" stands for "<name>.yaml"
  std::vector<File> files = {};         // more files beside the experiment (traces)
  std::string command = "run";
};

// The smallest valid experiment; cases change one thing.
const std::string kValid = "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {tokens: 8}\n";

std::vector<Case> cases() {
  const std::string trace_yaml = "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {file: ";
  std::vector<Case> c{
      {"unknown_top_level_key", "modle: mixtral-8x7b\ncache: {gpu_experts: 64}\n", {},
       {"{file}:1: modle: unknown key", "model"}},
      {"unknown_nested_key", "model: mixtral-8x7b\ncache: {gpu_expert: 4}\n", {},
       {"{file}:2: cache.gpu_expert: unknown key", "gpu_experts"}},
      {"unknown_key_in_preset_override",
       "model: mixtral-8x7b\nplatform: {nic: {bandwith: 100Gbps}}\ncache: {gpu_experts: 64}\n", {},
       {"{file}:2: platform.nic.bandwith: unknown key", "bandwidth"}},
      {"missing_model", "platform: default\ncache: {gpu_experts: 64}\n", {},
       {"{file}:", "model: missing required key"}},
      {"missing_gpu_experts", "model: mixtral-8x7b\ncache: {policy: lru}\n", {},
       {"{file}:2: cache.gpu_experts: missing required key"}},
      {"bad_unit_set", kValid, {"--set", "platform.nic.bandwidth=100Gbs"},
       {"--set: platform.nic.bandwidth:", "\"100Gbs\"", "unit"}},
      {"bad_unit_yaml", "model: mixtral-8x7b\nplatform: {nic: {bandwidth: 100Gbs}}\ncache: {gpu_experts: 64}\n", {},
       {"{file}:2: platform.nic.bandwidth:", "\"100Gbs\"", "unit"}},
      {"number_without_unit", "model: mixtral-8x7b\nplatform:\n  nic:\n    latency: 5\ncache: {gpu_experts: 64}\n", {},
       {"{file}:4: platform.nic.latency:", "no unit"}},
      {"negative_bandwidth",
       "model: mixtral-8x7b\nplatform: {nic: {bandwidth: -100Gbps}}\ncache: {gpu_experts: 64}\n", {},
       {"{file}:2: platform.nic.bandwidth:", "positive"}},
      {"zero_bandwidth", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\n", {"--set", "platform.pcie.bandwidth=0GBps"},
       {"--set: platform.pcie.bandwidth:", "positive"}},
      {"zero_bandwidth_yaml", "model: mixtral-8x7b\nplatform: {nic: {bandwidth: 0Gbps}}\ncache: {gpu_experts: 64}\n",
       {}, {"{file}:2: platform.nic.bandwidth:", "positive"}},
      {"negative_latency", "model: mixtral-8x7b\nplatform: {nic: {latency: -1us}}\ncache: {gpu_experts: 64}\n", {},
       {"{file}:2: platform.nic.latency:", "negative"}},
      {"unknown_model", "model: mixtral-9x7b\ncache: {gpu_experts: 64}\n", {},
       {"{file}:1: model:", "unknown model \"mixtral-9x7b\"", "mixtral-8x7b"}},
      {"unknown_tier", "model: mixtral-8x7b\nmemory: {tier: ramdisk}\ncache: {gpu_experts: 64}\n", {},
       {"{file}:2: memory.tier:", "\"ramdisk\"", "disk-mmap"}},
      {"unknown_tier_set", kValid, {"--set", "memory.tier=ramdisk"}, {"--set: memory.tier:", "\"ramdisk\""}},
      {"map_page_not_an_mmu_page", "model: mixtral-8x7b\nmemory: {rmai: {map_page: 64KiB}}\ncache: {gpu_experts: 64}\n",
       {}, {"{file}:2: memory.rmai.map_page:", "os.page_size or os.huge_page_size"}},
      {"unknown_cache_policy", "model: mixtral-8x7b\ncache: {gpu_experts: 64, policy: mru}\ntrace: {tokens: 8}\n", {},
       {"{file}:2: cache.policy:", "unknown cache policy \"mru\"", "lru"}},
      {"unknown_cache_policy_check", "model: mixtral-8x7b\ncache: {gpu_experts: 64, policy: mru}\n", {},
       {"{file}:2: cache.policy:", "\"mru\""}, {}, "check"},
      {"unknown_platform_preset", "model: mixtral-8x7b\nplatform: huge\ncache: {gpu_experts: 64}\n", {},
       {"{file}:2: platform:", "unknown platform preset \"huge\"", "default"}},
      {"unknown_nic_preset", "model: mixtral-8x7b\nplatform: {nic: infiniband-9000}\ncache: {gpu_experts: 64}\n", {},
       {"{file}:2: platform.nic:", "unknown nic preset \"infiniband-9000\"", "connectx-6-200g"}},
      {"cache_larger_than_model", "model: mixtral-8x7b\ncache: {gpu_experts: 300}\n", {},
       {"{file}:2: cache.gpu_experts:", "300", "256"}},
      {"cache_smaller_than_top_k", "model: mixtral-8x7b\ncache: {gpu_experts: 1}\n", {},
       {"{file}:2: cache.gpu_experts:", "top-k"}},
      {"zero_nodes", "model: mixtral-8x7b\nnodes: 0\ncache: {gpu_experts: 64}\n", {}, {"{file}:2: nodes:", "positive"}},
      {"negative_nodes", "model: mixtral-8x7b\nnodes: -1\ncache: {gpu_experts: 64}\n", {}, {"{file}:2: nodes:", "negative"}},
      {"nodes_not_a_number", "model: mixtral-8x7b\nnodes: two\ncache: {gpu_experts: 64}\n", {},
       {"{file}:2: nodes:", "\"two\"", "integer"}},
      {"nodes_not_a_number_set", kValid, {"--set", "nodes=two"}, {"--set: nodes:", "\"two\""}},
      {"bad_indentation", "model: mixtral-8x7b\ncache:\n  gpu_experts: 64\n   policy: lru\n", {},
       {"{file}:4:", "malformed YAML"}},
      {"unclosed_bracket", "model: mixtral-8x7b\ncache: {gpu_experts: 64\ntrace: {tokens: 8}\n", {},
       {"{file}:3:", "malformed YAML"}},
      {"yaml_is_a_list", "- model: mixtral-8x7b\n- cache: {gpu_experts: 64}\n", {}, {"{file}:1:", "YAML map"}},
      {"component_is_a_list", "model: mixtral-8x7b\ncache: [64, lru]\n", {}, {"{file}:2: cache:", "map"}},
      {"nonexistent_trace", trace_yaml + "nonexistent.csv}\n", {},
       {"{file}:3: trace.file:", "not found", "nonexistent.csv"}},
      {"trace_expert_out_of_range", trace_yaml + "oor.csv}\n", {},
       // header, 32 rows of token 0, then token 1's layer 5 is line 1 + 32 + 6.
       {"oor.csv:39:", "expert 9", "out of range"},
       {{"oor.csv", kHeader + token_rows(0, kMixtralMoeLayers, kFine) +
                        token_rows(1, kMixtralMoeLayers, [](int l) { return std::string(l == 5 ? "9;4" : "3;4"); })}}},
      {"truncated_trace", trace_yaml + "trunc.csv}\n", {},
       {"trunc.csv:53:", "truncated", "layers 0-19"},
       {{"trunc.csv", kHeader + token_rows(0, kMixtralMoeLayers, kFine) + token_rows(1, 20, kFine)}}},
      {"trace_wrong_header", trace_yaml + "header.csv}\n", {},
       {"header.csv:1:", "header", "seq,tok,layer"},
       {{"header.csv", "seq,tok,layer,experts,weights\n" + token_rows(0, kMixtralMoeLayers, kFine)}}},
      {"trace_duplicate_expert", trace_yaml + "dup.csv}\n", {},
       {"dup.csv:3:", "appears twice"},
       {{"dup.csv", kHeader + token_rows(0, kMixtralMoeLayers, [](int l) { return std::string(l == 1 ? "4;4" : "3;4"); })}}},
      {"trace_without_tokens", trace_yaml + "empty.csv}\n", {}, {"empty.csv", "no tokens"}, {{"empty.csv", kHeader}}},
      {"duplicate_key", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ncache: {gpu_experts: 8}\n", {},
       {"{file}:3: cache: duplicate key"}},
      {"set_without_equals", kValid, {"--set", "nodes"}, {"--set nodes:", "key=value"}},
      {"set_unknown_key", kValid, {"--set", "cache.size=4"}, {"--set: cache.size: unknown key", "gpu_experts"}},
      {"set_without_value", kValid, {"--set"}, {"--set:", "needs a value"}},
      {"unknown_option", kValid, {"--frobnicate"}, {"--frobnicate: unknown option"}},
      {"two_experiment_files", kValid, {"other.yaml"}, {"other.yaml:", "unexpected argument"}},
      {"negative_seed", kValid, {"--seed", "-3"}, {"--set: seed:", "negative"}},
      {"zero_tokens", kValid, {"--set", "trace.tokens=0"}, {"--set: trace.tokens:", "positive"}},
      {"unknown_generator", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {generator: zipfian}\n", {},
       {"{file}:3: trace.generator:", "unknown generator \"zipfian\"", "uniform"}},
      {"generator_reuse_out_of_range", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {generator: gen.yaml}\n",
       {}, {"gen.yaml:3: reuse:", "out of range"},
       {{"gen.yaml", "description: bad\npopularity: uniform\nreuse: 1.5\n"}}},
      {"generator_for_another_model", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {generator: gen.yaml}\n",
       {}, {"gen.yaml:1:", "tabulated for 1 layers, top-1 of 2 experts", "32 layers, top-2 of 8"},
       {{"gen.yaml", "popularity: table\ntop_k: 1\nexperts: 2\nlayers:\n  - {popularity: [1, 1], reuse: 0}\n"}}},
      {"hbm_overflow", "model: mixtral-8x7b\ncache: {gpu_experts: 250}\n", {},
       {"{file}:2: cache.gpu_experts:", "HBM", "250"}},
      {"unknown_key_check", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\nnode: 2\n", {},
       {"{file}:3: node: unknown key"}, {}, "check"},
      {"unknown_prefetcher_check", "model: mixtral-8x7b\ncache: {gpu_experts: 64, prefetch: psychic}\n", {},
       {"{file}:2: cache.prefetch:", "unknown prefetcher \"psychic\"", "next-layer"}, {}, "check"},
      {"nonexistent_experiment", "", {}, {"missing.yaml", "cannot open"}},
      // Serving (docs/architecture.md, "Serving").
      {"zero_batch", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\nserving: {batch: 0}\n", {},
       {"{file}:3: serving.batch:", "positive"}},
      {"negative_batch", kValid, {"--set", "serving.batch=-4"}, {"--set: serving.batch:"}},
      {"negative_prompt", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\nserving: {prompt: -1}\n", {},
       {"{file}:3: serving.prompt:"}},
      {"batch_beyond_the_gpu_cache", "model: mixtral-8x7b\ncache: {gpu_experts: 4}\nserving: {batch: 4}\n", {},
       {"{file}:2: cache.gpu_experts:", "8 experts of one layer at once"}},
      {"batch_with_a_prefetcher", "model: mixtral-8x7b\ncache: {gpu_experts: 64, prefetch: oracle}\nserving: {batch: 2}\n", {},
       {"{file}:3: serving.batch:", "prefetch"}},
      {"host_cache_larger_than_host_dram",
       "model: mixtral-8x7b\ncache: {gpu_experts: 64, host_experts: 256}\nplatform: {preset: default, dram: {capacity: 64GiB}}\n",
       {}, {"{file}:2: cache.host_experts:", "larger than host DRAM"}},
      {"host_cache_larger_than_the_model", kValid, {"--set", "cache.host_experts=300"},
       {"--set: cache.host_experts:", "256 routed experts"}},
      {"host_cache_on_a_direct_tier", kValid, {"--set", "cache.host_experts=64", "--set", "memory.tier=cxl"},
       {"--set: cache.host_experts:", "tier cxl"}},
      {"concurrency_beyond_the_tiers_limit", kValid, {"--set", "memory.rmai.concurrency=65"},
       {"--set: memory.rmai.concurrency:", "64"}},
      {"prompt_with_a_trace_file", trace_yaml + "t.csv}\nserving: {prompt: 8}\n", {},
       {"{file}:4: serving.prompt:", "phase"}, {{"t.csv", kHeader + token_rows(0, kMixtralMoeLayers, kFine)}}},
      {"unknown_host_policy", kValid, {"--set", "cache.host_policy=mru"},
       {"--set: cache.host_policy:", "unknown cache policy"}},
      {"prompt_with_a_prefetcher", "model: mixtral-8x7b\ncache: {gpu_experts: 64, prefetch: oracle}\nserving: {prompt: 8}\n", {},
       {"{file}:3: serving.prompt:", "prefetch"}},
      {"host_cache_with_a_prefetcher", "model: mixtral-8x7b\ncache: {gpu_experts: 64, prefetch: oracle, host_experts: 64}\n",
       {}, {"{file}:2: cache.host_experts:", "prefetch"}},
      {"concurrency_with_a_prefetcher", kValid, {"--set", "cache.prefetch=oracle", "--set", "memory.rmai.concurrency=2"},
       {"--set: memory.rmai.concurrency:", "prefetch"}},
      {"trace_prompt_with_a_prefetcher", trace_yaml + "t.csv}\n", {"--set", "cache.prefetch=oracle"},
       {"cache.prefetch:", "t.csv has prompt tokens"},
       {{"t.csv", kPhaseHeader + phase_rows(0, kMixtralMoeLayers, "prefill") + phase_rows(1, kMixtralMoeLayers, "decode")}}},
      {"trace_prompt_beyond_the_gpu_cache", "model: mixtral-8x7b\ncache: {gpu_experts: 2}\ntrace: {file: t.csv}\n", {},
       {"{file}:2: cache.gpu_experts:", "sequence 0 of", "prompt of 4 tokens", "8 experts"},
       {{"t.csv", kPhaseHeader + phase_rows(0, kMixtralMoeLayers, "prefill") + phase_rows(1, kMixtralMoeLayers, "prefill") +
                      phase_rows(2, kMixtralMoeLayers, "prefill") + phase_rows(3, kMixtralMoeLayers, "prefill") +
                      phase_rows(4, kMixtralMoeLayers, "decode")}}},
      {"emulated_disk_tier_with_concurrency", kValid,
       {"--mode", "emul", "--set", "memory.tier=disk-read", "--set", "memory.disk-read.concurrency=2"},
       {"--set: memory.disk-read.concurrency:", "one expert at a time"}},
      {"emulated_disk_read_with_a_host_cache", kValid,
       {"--mode", "emul", "--set", "memory.tier=disk-read", "--set", "cache.host_experts=64"},
       {"--set: cache.host_experts:", "disk-read store has no host cache"}},
  };
  return c;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

class BadInputTest : public rmai::testing::TempDirTest, public ::testing::WithParamInterface<Case> {};

TEST_P(BadInputTest, ExitsWithCode2AndAPreciseMessage) {
  const Case& c = GetParam();
  const std::string file_name = c.yaml.empty() ? "missing.yaml" : c.name + ".yaml";
  if (!c.yaml.empty()) std::ofstream(dir_ / file_name) << c.yaml;
  for (const auto& f : c.files) std::ofstream(dir_ / f.name) << f.content;
  const fs::path out = dir_ / "out";

  std::vector<std::string> args{c.command, (dir_ / file_name).string()};
  for (const auto& a : c.args) args.push_back(replace_all(a, "{file}", (dir_ / file_name).string()));
  if (c.command == "run") {
    args.push_back("--out");
    args.push_back(out.string());
  }
  const Result r = run(args, dir_);
  const std::string context = "stderr:\n" + r.err + "\nstdout:\n" + r.out.substr(0, 2000);

  EXPECT_FALSE(r.signaled) << context;
  EXPECT_EQ(r.exit_code, 2) << context;
  EXPECT_EQ(r.err.rfind("rmai: error: ", 0), 0u) << context;
  for (const auto& expected : c.expected) {
    const std::string text = replace_all(expected, "{file}", file_name);
    EXPECT_NE(r.err.find(text), std::string::npos) << "stderr lacks \"" << text << "\"\n" << context;
  }
  for (const char* crash : {"terminate called", "Backtrace", "backtrace", "Segmentation", "Aborted", "xbt_die"})
    EXPECT_EQ(r.err.find(crash), std::string::npos) << context;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line of error\n" << context;
  EXPECT_FALSE(fs::exists(out / "summary.json")) << context;
  EXPECT_FALSE(fs::exists(out / "switches.csv")) << context;
}

INSTANTIATE_TEST_SUITE_P(Cli, BadInputTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// Regressions of bugs found in review: positions of --set values, empty files, counts beyond 32 bits.
class BadInputRegressionTest : public rmai::testing::TempDirTest {};

// A --set that overrides a key present in the YAML must be reported as "--set", not at the line of
// the value it replaced.
TEST_F(BadInputRegressionTest, SetOverridingAYamlKeyIsReportedAsSet) {
  const fs::path exp = write("exp.yaml", "model: mixtral-8x7b\nnodes: 1\ncache: {gpu_experts: 64}\n");
  const Result r = run({"run", exp.string(), "--set", "nodes=0", "--out", (dir_ / "out").string()}, dir_);
  ASSERT_EQ(r.exit_code, 2) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out" / "summary.json"));
  EXPECT_NE(r.err.find("--set: nodes:"), std::string::npos) << r.err;
}

// An empty experiment file lacks `model`: the message must name the file, not "--set".
TEST_F(BadInputRegressionTest, EmptyExperimentFileIsNamed) {
  const fs::path exp = write("empty.yaml", "");
  const Result r = run({"run", exp.string(), "--out", (dir_ / "out").string()}, dir_);
  ASSERT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("model: missing required key"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("empty.yaml"), std::string::npos) << r.err;
}

// A count that does not fit the field must be rejected, not wrapped around.
TEST_F(BadInputRegressionTest, NodesBeyond32BitsAreRejected) {
  const fs::path exp =
      write("exp.yaml", "model: mixtral-8x7b\nnodes: 4294967297\ncache: {gpu_experts: 64}\ntrace: {tokens: 8}\n");
  const Result r = run({"run", exp.string(), "--out", (dir_ / "out").string()}, dir_);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("exp.yaml:2: nodes:"), std::string::npos) << r.err;
}

// SimGrid lists its valid options on stderr itself; what matters is exit code 2 and our last line.
TEST_F(BadInputRegressionTest, UnknownSimGridOptionIsBadInput) {
  const fs::path exp = write("exp.yaml", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {tokens: 8}\n");
  const Result r = run({"run", exp.string(), "--cfg=bogus/thing:3", "--out", (dir_ / "out").string()}, dir_);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("rmai: error: --cfg=bogus/thing:3: Bad config key: bogus/thing"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out" / "summary.json"));
}

// A malformed --switches is refused before the run: exit 2 naming the option, no results.
TEST_F(BadInputRegressionTest, MalformedSwitchSelectionIsBadInput) {
  const fs::path exp = write("exp.yaml", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {tokens: 8}\n");
  for (const std::string bad : {"sample:0", "some", "sample:1e3"}) {
    const Result r = run({"run", exp.string(), "--switches", bad, "--out", (dir_ / "out").string()}, dir_);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("rmai: error: --switches: \"" + bad + "\""), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out" / "summary.json"));
  }
}

}  // namespace
