// Hostile and careless input, class by class: every case exits 2 with a message naming the option,
// key or file, never with a signal, and leaves nothing behind (no results, no SimGrid backtrace
// files in the working directory). And a hostile environment: writes that fail (a file size limit,
// a full disk) or kill the writer exit 1 with the reason and leave no temporary behind.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include "cli_support.hpp"

namespace rmai {
namespace {

using testing::kQuickstart;
using testing::run;
using testing::temporaries_under;
namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// For run(): files limited to `bytes` (RLIMIT_FSIZE) and no core files. A longer write fails with
// EFBIG when SIGXFSZ is ignored (the disposition survives exec), else SIGXFSZ ends the writer.
std::function<void()> file_size_limit(rlim_t bytes, bool ignore_signal) {
  return [=] {
    if (ignore_signal) ::signal(SIGXFSZ, SIG_IGN);
    const rlimit size{bytes, bytes}, core{0, 0};
    ::setrlimit(RLIMIT_FSIZE, &size);
    ::setrlimit(RLIMIT_CORE, &core);
  };
}

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
  const auto out = (dir_ / "out.rmtrace").string();
  expect_refused({"trace", "gen", "--shape", "2,1,4", "--tokens", "4294967296", "-o", out},
                 "--tokens: 4294967296 tokens: at most 4294967295");
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

TEST_F(Hardening, AFailedWriteIsExitOneWithItsErrnoAndLeavesNoTemporary) {
  // Files limited to 16 KiB: config.resolved.yaml and summary.json fit, switches.csv (80 KB) does not.
  const auto limited = file_size_limit(16 << 10, true);
  const std::string too_large = std::strerror(EFBIG);
  const fs::path out = dir_ / "run";
  auto r = run({"run", kQuickstart.string(), "--set", "trace.tokens=32", "--out", out.string()}, dir_, limited);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("rmai: failed: cannot write " + (out / "switches.csv").string() + ": " + too_large),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out / "config.resolved.yaml"));  // the files of a run change together or not at all
  EXPECT_FALSE(fs::exists(out / "summary.json"));

  // A streaming writer: a generated trace.
  const fs::path trace = dir_ / "trace.csv";
  r = run({"trace", "gen", "--model", "mixtral-8x7b", "--tokens", "2000", "-o", trace.string()}, dir_, limited);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("rmai: failed: cannot write " + trace.string() + ": " + too_large), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(trace));

  // A sweep: every point fails alone and its error.log says why, with the run's exit status.
  const fs::path sweep = dir_ / "sweep";
  r = run({"sweep", kQuickstart.string(), "--set", "trace.tokens=32", "--sweep", "memory.tier=dram,rmai", "--jobs",
           "2", "--out", sweep.string()},
          dir_, limited);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  for (const std::string point : {"p0000", "p0001"}) {
    const std::string why = "failed: cannot write " + (sweep / point / "switches.csv").string() + ": " + too_large;
    const std::string log = slurp(sweep / point / "error.log");
    EXPECT_NE(log.find("rmai: " + why + "\n"), std::string::npos) << point << ": " << log;
    EXPECT_NE(log.find("rmai: failed: `rmai run` exited with status 1\n"), std::string::npos) << log;
    EXPECT_NE(r.err.find("  " + point + " (memory.tier="), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
  }
  EXPECT_NE(slurp(sweep / "results.csv").find("p0001,failed,rmai"), std::string::npos) << slurp(sweep / "results.csv");
  for (const auto& left : temporaries_under(dir_)) ADD_FAILURE() << "left behind: " << left;
}

TEST_F(Hardening, AWriterKilledMidWriteLeavesNoTemporaryAndItsPointSaysWhichSignal) {
  // The same limit with SIGXFSZ at its default action: the write of switches.csv kills the run.
  const auto limited = file_size_limit(16 << 10, false);
  const fs::path out = dir_ / "run";
  auto r = run({"run", kQuickstart.string(), "--set", "trace.tokens=32", "--out", out.string()}, dir_, limited);
  EXPECT_TRUE(r.signaled) << r.exit_code << ": " << r.err;
  EXPECT_EQ(r.exit_code, 128 + SIGXFSZ) << r.err;
  EXPECT_FALSE(fs::exists(out / "summary.json"));

  const fs::path sweep = dir_ / "sweep";
  r = run({"sweep", kQuickstart.string(), "--set", "trace.tokens=32", "--sweep", "memory.tier=dram,rmai", "--jobs",
           "2", "--out", sweep.string()},
          dir_, limited);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const std::string killed = "rmai: failed: `rmai run` was killed by signal " + std::to_string(SIGXFSZ) + " (" +
                             strsignal(SIGXFSZ) + ")\n";
  for (const std::string point : {"p0000", "p0001"})
    EXPECT_NE(slurp(sweep / point / "error.log").find(killed), std::string::npos) << slurp(sweep / point / "error.log");
  for (const auto& left : temporaries_under(dir_)) ADD_FAILURE() << "left behind: " << left;
}

TEST_F(Hardening, AGeneratedTraceIsStreamedInBoundedMemory) {
  // 262144 tokens of 64 layers x top-8: 256 MiB of expert ids, which the run would hold whole had
  // it built the trace before writing it (it peaked near 300 MB). A generator that keeps every
  // expert draws little, so the test spends its time writing.
  const fs::path generator = write("keep.yaml", "description: keeps every expert\npopularity: uniform\nreuse: 1\n");
  const fs::path trace = dir_ / "big.rmtrace";
  const std::uint64_t tokens = 262144, record = 8 + 64 * 8 * 2;
  const auto r = run({"trace", "gen", "--shape", "64,8,256", "--generator", generator.string(), "--tokens",
                      std::to_string(tokens), "--sequences", "4", "-o", trace.string()},
                     dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fs::file_size(trace), 36 + tokens * record);
  // The program alone is about 40 MB resident (its libraries); the trace must add next to nothing.
  EXPECT_GT(r.max_rss_kib, 0);
  EXPECT_LT(r.max_rss_kib, 128 << 10) << "KiB: trace gen held the trace";
}

// A tmpfs of `kib` KiB and `inodes` files at `dir`, in a mount namespace of this test process alone
// (gone with it, even if the test crashes). Empty when it is mounted, else why not (it needs root).
std::string mount_tmpfs(const fs::path& dir, int kib, int inodes) {
  const auto failed = [](const std::string& call) { return call + ": " + std::strerror(errno); };
  if (::unshare(CLONE_NEWNS) != 0) return failed("unshare(CLONE_NEWNS)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return failed("mount --make-rprivate /");
  fs::create_directories(dir);
  const std::string size = "size=" + std::to_string(kib) + "k,nr_inodes=" + std::to_string(inodes);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, size.c_str()) != 0) return failed("mount -t tmpfs");
  return "";
}

// Fills the file system of `dir` but for `spare` bytes (rounded to pages).
void fill(const fs::path& dir, std::size_t spare) {
  const fs::path file = dir / "filler";
  fs::remove(file);
  std::error_code ec;
  const auto free = fs::space(dir, ec).available;
  ASSERT_GE(free, spare);
  std::ofstream(file, std::ios::binary) << std::string(free - spare, 'x');
  if (spare == 0) {  // and the rounding
    std::ofstream more(file, std::ios::binary | std::ios::app);
    for (int i = 0; i < 64 && more; ++i) more << std::string(4096, 'x') << std::flush;
  }
}

TEST_F(Hardening, AFullDiskIsExitOneWithTheReasonAndLeavesNoTemporary) {
  const fs::path disk = dir_ / "disk";
  if (const std::string why = mount_tmpfs(disk, 256, 64); !why.empty())
    GTEST_SKIP() << "no tmpfs to fill: " << why;
  struct Unmount {
    fs::path dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{disk};
  const std::string no_space = std::strerror(ENOSPC);
  const fs::path sweep = disk / "sweep";
  const std::vector<std::string> sweep_args{"sweep", kQuickstart.string(), "--set", "trace.tokens=32", "--sweep",
                                            "memory.tier=dram,rmai", "--jobs", "1", "--out", sweep.string()};
  std::vector<std::string> emit = sweep_args;
  emit.insert(emit.end(), {"--emit", "slurm"});
  ASSERT_EQ(run(emit, dir_).exit_code, 0);  // sweep.json written while there is room

  // Not a byte free: nothing can be written, not even an error.log; the reasons go to stderr.
  fill(disk, 0);
  const fs::path out = disk / "run";
  auto r = run({"run", kQuickstart.string(), "--set", "trace.tokens=32", "--out", out.string()}, dir_);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("rmai: failed: cannot write " + out.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(no_space), std::string::npos) << r.err;
  r = run(sweep_args, dir_);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  for (const std::string point : {"p0000", "p0001"}) {
    EXPECT_NE(r.err.find("  " + point + " (memory.tier="), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(point + ": failed: cannot write " + (sweep / point).string()), std::string::npos) << r.err;
  }
  EXPECT_NE(r.err.find("(its error.log could not be written)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rmai: failed: cannot write " + (sweep / "results.csv").string() + ": " + no_space),
            std::string::npos)
      << r.err;
  for (const auto& left : temporaries_under(disk)) ADD_FAILURE() << "left behind: " << left;

  // Room for small files only: each point's error.log says why its run failed.
  fill(disk, 24 << 10);
  r = run(sweep_args, dir_);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  for (const std::string point : {"p0000", "p0001"}) {
    const std::string log = slurp(sweep / point / "error.log");
    EXPECT_NE(log.find("rmai: failed: cannot write " + (sweep / point).string()), std::string::npos) << log;
    EXPECT_NE(log.find(no_space), std::string::npos) << log;
  }
  EXPECT_NE(slurp(sweep / "results.csv").find("p0000,failed,dram"), std::string::npos) << r.err;
  for (const auto& left : temporaries_under(disk)) ADD_FAILURE() << "left behind: " << left;

  // No file can be created at all (no inode left): a full disk, not a bad --out.
  fs::create_directories(disk / "files");
  std::size_t created = 0;
  while (std::ofstream(disk / "files" / std::to_string(created))) ++created;
  ASSERT_GT(created, 0u);
  for (const char* command : {"run", "sweep"}) {
    const fs::path fresh = disk / "fresh";
    r = run({command, kQuickstart.string(), "--set", "trace.tokens=32", "--out", fresh.string()}, dir_);
    EXPECT_EQ(r.exit_code, 1) << command << ": " << r.err;
    EXPECT_NE(r.err.find("rmai: failed: --out " + fresh.string() + ": cannot write in " + disk.string() + ": " + no_space),
              std::string::npos)
        << command << ": " << r.err;
  }
}

TEST_F(Hardening, PresetNamesArePlainNames) {
  // A preset name is a file stem: a NUL, a control character or a leading dot is no preset; a path
  // names a file of its own (config::is_path), which must exist.
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
