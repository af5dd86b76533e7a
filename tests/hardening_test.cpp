// Hostile and careless input, class by class: every case exits 2 with a message naming the option,
// key or file, never with a signal, and leaves nothing behind (no results, no SimGrid backtrace
// files in the working directory).
#include <gtest/gtest.h>
#include <sys/resource.h>

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

TEST_F(Hardening, CommandLineCountsBeyondTheirRangeAreExitTwo) {
  for (const std::string jobs : {"4294967296", "4294967297", "1025", "0", "-1"}) {
    const auto r = run({"sweep", kQuickstart.string(), "--jobs", jobs, "--out", (dir_ / "out").string()}, dir_);
    EXPECT_EQ(r.exit_code, 2) << jobs << ": " << r.err;
    EXPECT_NE(r.err.find("--jobs"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out"));
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

TEST_F(Hardening, MalformedYamlStructureIsExitTwoWithFileAndLine) {
  const std::string base = "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {tokens: 2}\n";
  struct Case {
    std::string text, named;
    std::vector<std::string> commands;  // run and check ignore the sweep block; sweep reads it
  };
  const std::vector<std::string> all{"run", "check", "sweep"};
  for (const auto& c : std::vector<Case>{
           {"? [a, b]\n: 1\n" + base, "bad.yaml:1: a key must be a plain word, not a list", all},
           {base + "memory:\n  ? {x: 1}\n  : rmai\n", "bad.yaml:5: memory: a key must be a plain word, not a map", all},
           {base + "---\nmodel: other\n", "bad.yaml:4: a second YAML document", all},
           {base + "sweep:\n  ? [nodes]\n  : [1, 2]\n", "bad.yaml:5: sweep: a key must be a plain word", {"sweep"}},
       }) {
    const fs::path file = write("in/bad.yaml", c.text);
    for (const auto& command : c.commands) {
      std::vector<std::string> args{command, file.string()};
      if (command != "check") args.insert(args.end(), {"--out", (dir_ / "out").string()});
      const auto r = run(args, dir_);
      EXPECT_EQ(r.exit_code, 2) << command << "\n" << c.text << r.err;
      EXPECT_NE(r.err.find(c.named), std::string::npos) << command << ": expected \"" << c.named << "\" in: " << r.err;
      EXPECT_FALSE(fs::exists(dir_ / "out")) << command;
    }
    fs::remove_all(dir_ / "in");
  }
}

TEST_F(Hardening, ExperimentNamesStayInsideResults) {
  for (const std::string& name : std::vector<std::string>{"../evil", "a/b", "..", ".", "\"a\\nb\"", "\"tab\\there\"", std::string(129, 'x')}) {
    const fs::path file =
        write("in/exp.yaml", "model: mixtral-8x7b\nname: " + name + "\ncache: {gpu_experts: 64}\ntrace: {tokens: 2}\n");
    const auto r = run({"run", file.string()}, dir_);  // no --out: results/<name>
    EXPECT_EQ(r.exit_code, 2) << name << ": " << r.err;
    EXPECT_NE(r.err.find("exp.yaml:2: name: the experiment name must be one file name"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "results")) << name;
    EXPECT_FALSE(fs::exists(dir_ / "evil")) << name;
    fs::remove_all(dir_ / "in");
  }
}

TEST_F(Hardening, SizesThatWouldExhaustMemoryAreRefusedBeforeAllocating) {
  for (const auto& [set, named] : std::vector<std::pair<std::string, std::string>>{
           {"nodes=4294967295", "nodes: too large (at most 4096)"},
           {"nodes=4097", "nodes: too large (at most 4096)"},
           {"trace.tokens=4294967295", "trace.tokens: 4294967295 tokens of mixtral-8x7b"},
           {"trace.tokens=3000000", "trace.tokens: 3000000 tokens"},
           {"trace.sequences=3", "trace.sequences: more sequences than tokens"}})
    expect_refused(run_args({"--set", set}), named);
}

TEST_F(Hardening, DeeplyNestedJsonIsRefusedWithoutRecursion) {
  // 100k levels of nesting anywhere in a record: before, freeing or printing them overflowed the stack.
  const std::string deep = std::string(100000, '[') + "1" + std::string(100000, ']');
  const std::string record = "{\"layer\":0,\"token_idx\":0,\"problem_id\":1,\"experts\":[1]}\n";
  for (const std::string& line : std::vector<std::string>{
           "{\"layer\":0,\"token_idx\":0,\"problem_id\":1,\"experts\":" + deep + "}",
           "{\"layer\":" + deep + ",\"token_idx\":0,\"problem_id\":1,\"experts\":[1]}",
           "{\"problem_id\":" + deep + ",\"layer\":0,\"token_idx\":0,\"experts\":[1]}",
           deep, "{\"a\":" + std::string(9, '{') + std::string(9, '}') + "}"}) {
    const fs::path log = write("in/log.jsonl", record + line + "\n");
    const auto r = run({"trace", "import", "--format", "jsonl", log.string(), "-o", (dir_ / "out.csv").string()}, dir_);
    EXPECT_FALSE(r.signaled) << r.err;
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("log.jsonl:2: arrays and objects nested more than 8 deep"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out.csv"));
    fs::remove_all(dir_ / "in");
  }
}

TEST_F(Hardening, TraceShapesBeyondTheBoundsAreRefusedBeforeAllocating) {
  // A 36-byte header claiming 16384 layers of top-65536 of 65536 experts; a CSV whose one row sits
  // at layer 8191; generator shapes as large.
  std::string header("RMAITRC\0", 8);
  for (const std::uint32_t field : {1u, 16384u, 65536u, 65536u, 0u}) header.append(reinterpret_cast<const char*>(&field), 4);
  const std::uint64_t tokens = 1;
  header.append(reinterpret_cast<const char*>(&tokens), 8);
  const fs::path binary = write("in/huge.rmtrace", header);
  const fs::path csv = write("in/huge.csv", "seq,token,layer,experts,weights\n0,0,8191,65535,\n");
  const auto out = (dir_ / "out.csv").string();
  for (const auto& [args, named] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"trace", "stats", binary.string()}, "huge.rmtrace: header: trace shape: 16384 layers, more than 512"},
           {{"trace", "convert", binary.string(), "-o", out}, "huge.rmtrace: header: trace shape: 16384 layers"},
           {{"trace", "stats", csv.string()}, "huge.csv: trace shape: 8192 layers, more than 512"},
           {{"trace", "gen", "--shape", "4294967295,65536,65536", "--tokens", "10", "-o", out}, "--shape"},
           {{"trace", "gen", "--shape", "32,65,65536", "--tokens", "10", "-o", out}, "top_k 65, more than 64"},
           {{"trace", "stats", write("in/wide.csv", "seq,token,layer,experts,weights\n0,0,0,65535,\n0,0,1,1,\n").string()},
            "trace statistics: the cross-layer tables of 2 layers x 65536 experts would take 65536 MiB"}}) {
    const auto r = run(args, dir_);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << "expected \"" << named << "\" in: " << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
  rusage children{};
  ::getrusage(RUSAGE_CHILDREN, &children);
  EXPECT_LT(children.ru_maxrss, 500 * 1024) << "KB: a child of this test peaked above 500 MB";
}

TEST_F(Hardening, ALineThatNeverEndsIsRefusedAtItsLine) {
  const std::string endless(5 << 20, '7');
  const fs::path csv = write("in/endless.csv", "seq,token,layer,experts,weights\n0,0,0," + endless);
  const fs::path log = write("in/endless.jsonl", "{\"layer\": " + endless);
  for (const auto& [args, named] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"trace", "stats", csv.string()}, "endless.csv:2: a line longer than 4 MiB"},
           {{"trace", "import", "--format", "jsonl", log.string(), "-o", (dir_ / "out.csv").string()},
            "endless.jsonl:1: a line longer than 4 MiB"}}) {
    const auto r = run(args, dir_);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << "expected \"" << named << "\" in: " << r.err;
  }
  EXPECT_FALSE(fs::exists(dir_ / "out.csv"));
}

TEST_F(Hardening, ASweepOfTooManyPointsIsRefusedBeforeExpanding) {
  // 339 bytes of YAML with aliases: 64 M points.
  const fs::path file = write("in/aliases.yaml",
                              "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {tokens: 2}\nsweep:\n"
                              "  seed: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]\n"
                              "  trace.seed: *a\n  nodes: *a\n  platform.memory_servers: *a\n  cache.policy: [lru, lfu]\n"
                              "  cache.gpu_experts: [8, 16, 32, 64]\n  trace.tokens: [1, 2, 3, 4, 5]\n");
  const auto r = run({"sweep", file.string(), "--out", (dir_ / "out").string()}, dir_);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("aliases.yaml: sweep: 6400000 points (20 x 20 x 20 x 20 x 2 x 4 x 5), more than the 10000"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  rusage children{};
  ::getrusage(RUSAGE_CHILDREN, &children);
  EXPECT_LT(children.ru_maxrss, 500 * 1024) << "KB";
}

TEST_F(Hardening, ASecretFileIsReadBoundedWhateverItIs) {
  const fs::path big = write("in/big.secret", std::string(5000, 'a'));
  for (const std::string& file : std::vector<std::string>{"/dev/zero", big.string()}) {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"memd", kQuickstart.string(), "--secret-file", file},
             {"run", kQuickstart.string(), "--mode", "emul", "--set", "emul.server=127.0.0.1:1", "--set",
              "emul.secret_file=" + file, "--out", (dir_ / "out").string()}}) {
      const auto r = run(args, dir_);
      EXPECT_EQ(r.exit_code, 2) << r.err;
      EXPECT_NE(r.err.find(file + ": longer than 4096 bytes: not a memd secret file"), std::string::npos) << r.err;
    }
  }
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  rusage children{};
  ::getrusage(RUSAGE_CHILDREN, &children);
  EXPECT_LT(children.ru_maxrss, 500 * 1024) << "KB";
}

TEST_F(Hardening, ReproduceOnlyOneExperimentSucceedsAndSaysWhatItDidNotDraw) {
  const auto r = run({"reproduce", "--quick", "--only", "faults", "--out", (dir_ / "out").string()}, dir_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("rmai reproduce: failed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not drawn (their experiments were not run): fig1_switch_latency"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "out" / "figures" / "fig2a_faults.png"));
  EXPECT_FALSE(fs::exists(dir_ / "out" / "figures" / "fig1_switch_latency.png"));
}

TEST_F(Hardening, AnUnusableOutputLocationIsRefusedBeforeTheRun) {
  const fs::path file = write("in/a-file", "x");
  for (const auto& [out, named] : std::vector<std::pair<std::string, std::string>>{
           {"/dev/full", "--out /dev/full: exists and is not a directory"},
           {file.string(), "a-file: exists and is not a directory"},
           {(file / "below").string(), "a-file is not a directory"},
           {"", "--out: needs a value, got an empty one"}}) {
    for (const char* command : {"run", "sweep", "validate"}) {
      const auto r = run({command, kQuickstart.string(), "--set", "trace.tokens=2", "--out", out}, dir_);
      EXPECT_EQ(r.exit_code, 2) << command << " " << out << ": " << r.err;
      EXPECT_NE(r.err.find(named), std::string::npos) << command << ": expected \"" << named << "\" in: " << r.err;
      EXPECT_EQ(r.err.find("expert switches"), std::string::npos) << command << ": it ran first";
    }
  }
}

TEST_F(Hardening, PresetNamesArePlainNames) {
  // A preset name is a file stem: a NUL, a control character, a leading dot or a path is no preset.
  for (const std::string& set : std::vector<std::string>{"platform.nic=\x07nnectx", "platform.nic=../nic/connectx-6-200g",
                                                        "platform.nic=.hidden", "model=/etc/passwd",
                                                        "trace.generator=.default"}) {
    const auto r = run({"check", kQuickstart.string(), "--set", set}, dir_);
    EXPECT_EQ(r.exit_code, 2) << set << ": " << r.err;
    EXPECT_NE(r.err.find("unknown"), std::string::npos) << r.err;
  }
  const auto r = run({"check", dir_.string()}, dir_);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("is a directory, not a YAML file"), std::string::npos) << r.err;
}

TEST_F(Hardening, ABinaryTracesSizeIsCheckedAgainstItsHeader) {
  // One token claimed, a billion announced: refused from the file size, not after reading.
  std::string header("RMAITRC\0", 8);
  for (const std::uint32_t field : {1u, 2u, 1u, 4u, 0u}) header.append(reinterpret_cast<const char*>(&field), 4);
  const std::uint64_t tokens = 1000000000;
  header.append(reinterpret_cast<const char*>(&tokens), 8);
  const fs::path binary = write("in/short.rmtrace", header + std::string(12, '\0'));
  const auto r = run({"trace", "stats", binary.string()}, dir_);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("the header announces 1000000000 token records of 12 bytes (12000000036 bytes with the header) "
                       "but the file has 48: truncated file"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace rmai
