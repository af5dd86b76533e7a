// Sweeps: the sweep and quick blocks and --sweep (spec/sweep.hpp), and `rmai sweep` end to
// end: point directories, results.csv, resume, failing points, the Slurm job array and --collect,
// a sweep killed with SIGKILL, a point another process is writing. Every point is tiny (32
// synthetic tokens, a fraction of a second) unless it must last long enough to be interrupted.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_support.hpp"
#include "config/errors.hpp"
#include "spec/sweep.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using rmai::testing::eventually;
using rmai::testing::processes_mentioning;
using rmai::testing::Result;
using rmai::testing::run;
using rmai::testing::temporaries_under;

using rmai::testing::kQuickstart;
using rmai::testing::kSourceDir;

// A small experiment with room for sweep blocks below it (the blocks start at line 6).
const std::string kBase = "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {tokens: 32}\nseed: 1\n"
                          "memory: {tier: rmai}\n";

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

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(text);
  while (std::getline(in, field, separator)) fields.push_back(field);
  if (!text.empty() && text.back() == separator) fields.emplace_back();
  return fields;
}

// results.csv as rows of column -> value (no field in these tests needs quoting), and the header.
struct Csv {
  std::vector<std::string> header;
  std::vector<std::map<std::string, std::string>> rows;
};

Csv read_csv(const fs::path& path) {
  Csv csv;
  std::istringstream in(slurp(path));
  std::string line;
  if (!std::getline(in, line)) return csv;
  csv.header = split(line, ',');
  while (std::getline(in, line)) {
    const auto fields = split(line, ',');
    EXPECT_EQ(fields.size(), csv.header.size()) << line;
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < fields.size() && i < csv.header.size(); ++i) row[csv.header[i]] = fields[i];
    csv.rows.push_back(row);
  }
  return csv;
}

void flatten(const json& j, const std::string& prefix, std::map<std::string, json>& out) {
  if (j.is_object())
    for (const auto& [key, value] : j.items()) flatten(value, prefix.empty() ? key : prefix + "." + key, out);
  else
    out[prefix] = j;
}

// Every leaf of the point's summary.json is a column of its row, with the same value.
void expect_row_matches_summary(const std::map<std::string, std::string>& row, const fs::path& summary) {
  std::map<std::string, json> leaves;
  flatten(json::parse(slurp(summary)), "", leaves);
  ASSERT_GT(leaves.size(), 10u);
  for (const auto& [key, value] : leaves) {
    ASSERT_TRUE(row.count(key)) << "no column " << key;
    const std::string& cell = row.at(key);
    if (value.is_number()) {
      EXPECT_EQ(std::stod(cell), value.get<double>()) << key << " of " << summary;
    } else if (value.is_string()) {
      EXPECT_EQ(cell, value.get<std::string>()) << key << " of " << summary;
    } else if (value.is_null()) {
      EXPECT_EQ(cell, "") << key;
    }
  }
}

std::vector<std::vector<std::string>> assignments(const std::vector<rmai::spec::SweepPoint>& points) {
  std::vector<std::vector<std::string>> out;
  for (const auto& p : points) out.push_back(p.assignments);
  return out;
}

class SweepTest : public rmai::testing::TempDirTest {
 protected:
  // `rmai sweep quickstart.yaml --set trace.tokens=32 <extra> --out DIR/<out> --jobs 2`.
  Result sweep_quickstart(const std::string& out, const std::vector<std::string>& extra) {
    std::vector<std::string> args{"sweep", kQuickstart.string(), "--set", "trace.tokens=32"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--out", (dir_ / out).string(), "--jobs", "2"});
    return run(args);
  }
};

// --- the sweep definition ------------------------------------------------------------------------

TEST_F(SweepTest, FirstKeyVariesSlowestAndZippedKeysAdvanceTogether) {
  const fs::path exp = write("exp.yaml", kBase + R"(sweep:
  memory.tier: [dram, cxl, rmai]
  "model, trace.generator,cache.gpu_experts":
    - [mixtral-8x7b, mixtral-8x7b-mmlu, 64]
    - [olmoe-1b-7b, olmoe-1b-7b-c4, 256]
)");
  const auto spec = rmai::spec::load_sweep(exp, false, {});
  ASSERT_EQ(spec.dimensions.size(), 2u);
  EXPECT_EQ(spec.dimensions[1].keys, (std::vector<std::string>{"model", "trace.generator", "cache.gpu_experts"}));
  const auto points = rmai::spec::expand(spec);
  ASSERT_EQ(points.size(), 6u);
  const std::vector<std::string> mixtral{"model=mixtral-8x7b", "trace.generator=mixtral-8x7b-mmlu", "cache.gpu_experts=64"};
  const std::vector<std::string> olmoe{"model=olmoe-1b-7b", "trace.generator=olmoe-1b-7b-c4", "cache.gpu_experts=256"};
  std::vector<std::vector<std::string>> expected;
  for (const char* tier : {"dram", "cxl", "rmai"})
    for (const auto& zipped : {mixtral, olmoe}) {
      std::vector<std::string> point{std::string("memory.tier=") + tier};
      point.insert(point.end(), zipped.begin(), zipped.end());
      expected.push_back(point);
    }
  EXPECT_EQ(assignments(points), expected);
  EXPECT_EQ(points[0].name, "p0000");
  EXPECT_EQ(points[5].name, "p0005");
  EXPECT_EQ(points[3].steps, (std::vector<std::size_t>{1, 1}));
}

TEST_F(SweepTest, QuickBlockAndCommandLineSweeps) {
  const fs::path exp = write("exp.yaml", kBase + R"(sweep:
  memory.tier: [dram, cxl, rmai]
  nodes: [1, 2]
quick:
  trace.tokens: 8
  sweep:
    memory.tier: [rmai, disk-mmap]
)");
  const auto full = rmai::spec::load_sweep(exp, false, {});
  EXPECT_TRUE(full.sets.empty());
  EXPECT_EQ(rmai::spec::expand(full).size(), 6u);

  const auto quick = rmai::spec::load_sweep(exp, true, {});
  EXPECT_EQ(quick.sets, (std::vector<std::string>{"trace.tokens=8"}));
  EXPECT_EQ(assignments(rmai::spec::expand(quick)),
            (std::vector<std::vector<std::string>>{{"memory.tier=rmai", "nodes=1"},
                                                   {"memory.tier=rmai", "nodes=2"},
                                                   {"memory.tier=disk-mmap", "nodes=1"},
                                                   {"memory.tier=disk-mmap", "nodes=2"}}));

  // --sweep replaces a file's list in place and adds a new key as the fastest-varying one.
  const auto cli = rmai::spec::load_sweep(exp, false, {"memory.tier=dram", "cache.gpu_experts=64,128"});
  EXPECT_EQ(assignments(rmai::spec::expand(cli)),
            (std::vector<std::vector<std::string>>{{"memory.tier=dram", "nodes=1", "cache.gpu_experts=64"},
                                                   {"memory.tier=dram", "nodes=1", "cache.gpu_experts=128"},
                                                   {"memory.tier=dram", "nodes=2", "cache.gpu_experts=64"},
                                                   {"memory.tier=dram", "nodes=2", "cache.gpu_experts=128"}}));

  // No sweep at all: one point, the experiment as it is.
  const fs::path plain = write("plain.yaml", kBase);
  const auto one = rmai::spec::expand(rmai::spec::load_sweep(plain, true, {}));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_TRUE(one[0].assignments.empty());
}

TEST_F(SweepTest, BadSweepBlocksNameFileLineAndKey) {
  struct Case {
    std::string blocks, where, message;
  };
  const std::vector<Case> cases{
      {"sweep:\n  memory.tier: dram\n", "exp.yaml:7: memory.tier", "expected a list"},
      {"sweep:\n  memory.tier: []\n", "exp.yaml:7: memory.tier", "empty list"},
      {"sweep:\n  memory.tier: [dram, {a: 1}]\n", "exp.yaml:7: memory.tier", "expected a value"},
      {"sweep:\n  \"model,cache.gpu_experts\":\n    - [mixtral-8x7b, 64]\n    - [olmoe-1b-7b]\n",
       "exp.yaml:9: model,cache.gpu_experts", "tuple of 2 values"},
      {"sweep:\n  memory.teir: [dram]\n", "exp.yaml:7: memory.teir", "unknown key"},
      {"sweep:\n  cache.gpu_experts.x: [1]\n", "exp.yaml:7: cache.gpu_experts.x", "unknown key"},
      {"sweep: [memory.tier]\n", "exp.yaml:6: sweep", "expected a map"},
      {"sweep:\n  model: [mixtral-8x7b]\n  \"model,nodes\": [[mixtral-8x7b, 1]]\n", "exp.yaml:8: model,nodes",
       "swept twice"},
      {"sweep:\n  nodes: [1]\nquick:\n  sweep:\n    seed: [1]\n", "exp.yaml:10: quick.sweep.seed",
       "not a key of the sweep block"},
      {"sweep:\n  nodes: [1]\nquick:\n  trace.tokns: 8\n", "exp.yaml:9: quick.trace.tokns", "unknown key"},
  };
  for (const auto& c : cases) {
    const fs::path exp = write("exp.yaml", kBase + c.blocks);
    try {
      rmai::spec::load_sweep(exp, false, {});
      ADD_FAILURE() << "accepted:\n" << c.blocks;
    } catch (const rmai::InputError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(c.where), std::string::npos) << what;
      EXPECT_NE(what.find(c.message), std::string::npos) << what;
    }
  }
  const fs::path plain = write("plain.yaml", kBase);
  for (const char* bad : {"nodes", "=1", "nodes=", "nodes=1,,2", "memory.teir=dram", "model,nodes=a"})
    EXPECT_THROW(rmai::spec::load_sweep(plain, false, {std::string(bad)}), rmai::InputError) << bad;
  // A key swept together with others in the file cannot get its own list.
  const fs::path zipped = write("zipped.yaml", kBase + "sweep:\n  \"model,nodes\": [[mixtral-8x7b, 1]]\n");
  EXPECT_THROW(rmai::spec::load_sweep(zipped, false, {"nodes=2"}), rmai::InputError);
}

// --- rmai sweep ----------------------------------------------------------------------------------

TEST_F(SweepTest, BadInputExitsTwoBeforeAnythingRuns) {
  const fs::path exp = write("exp.yaml", kBase + "sweep:\n  memory.tier: [dram, cxll]\n");
  Result r = run({"sweep", exp.string(), "--out", (dir_ / "out").string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("exp.yaml:7: memory.tier"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cxll"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));

  // A value no point accepts, from the command line.
  r = sweep_quickstart("out", {"--sweep", "cache.gpu_experts=64,1"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("--sweep: cache.gpu_experts: value 1 fails in every point"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));

  // The main part of the file is wrong: every point fails the same way.
  const fs::path broken = write("broken.yaml", kBase + "nodes: 0\nsweep:\n  memory.tier: [dram, cxl]\n");
  r = run({"sweep", broken.string(), "--out", (dir_ / "out").string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("broken.yaml:6: nodes"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));

  const fs::path bad_block = write("bad_block.yaml", kBase + "sweep:\n  memory.tier: dram\n");
  r = run({"sweep", bad_block.string(), "--out", (dir_ / "out").string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("bad_block.yaml:7: memory.tier"), std::string::npos) << r.err;

  r = sweep_quickstart("out", {"--point", "1"});  // a single point, index 0
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  r = sweep_quickstart("out", {"--emit", "pbs"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  r = sweep_quickstart("out", {"--switches", "sample:0"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("--switches"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// --switches goes to every point's rmai run: the rows thin out, summary.json still counts them all.
TEST_F(SweepTest, SwitchesSelectionReachesEveryPoint) {
  const Result r = sweep_quickstart("out", {"--sweep", "memory.tier=dram,rmai", "--switches", "sample:10"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  for (const char* point : {"p0000", "p0001"}) {
    const fs::path dir = dir_ / "out" / point;
    const std::string csv = slurp(dir / "switches.csv");
    const auto rows = std::uint64_t(std::count(csv.begin(), csv.end(), '\n')) - 1;
    const std::uint64_t switches = json::parse(slurp(dir / "summary.json"))["expert_switches"];
    ASSERT_GT(switches, 20u) << point;
    EXPECT_EQ(rows, (switches + 9) / 10) << point;
  }
}

TEST_F(SweepTest, RunAndCheckIgnoreTheSweepBlocks) {
  const fs::path exp = write("exp.yaml", kBase + "sweep:\n  memory.tier: [dram, cxl]\nquick:\n  trace.tokens: 8\n"
                                                 "  sweep: {memory.tier: [dram]}\n");
  Result r = run({"check", exp.string()});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out.find("sweep"), std::string::npos) << r.out;
  r = run({"run", exp.string(), "--out", (dir_ / "one").string()});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(json::parse(slurp(dir_ / "one" / "summary.json"))["tier"], "rmai");
}

TEST_F(SweepTest, FourPointsWriteTheirDirectoriesAndOneTidyCsv) {
  const Result r = sweep_quickstart("out", {"--sweep", "memory.tier=dram,rmai", "--sweep", "cache.gpu_experts=64,128"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const fs::path out = dir_ / "out";
  const std::vector<std::pair<std::string, std::string>> params{{"dram", "64"}, {"dram", "128"}, {"rmai", "64"}, {"rmai", "128"}};
  for (int i = 0; i < 4; ++i) {
    const fs::path point = out / ("p000" + std::to_string(i));
    EXPECT_TRUE(fs::exists(point / "summary.json")) << point;
    EXPECT_TRUE(fs::exists(point / "switches.csv")) << point;
    EXPECT_FALSE(fs::exists(point / "error.log")) << point;
  }
  const json doc = json::parse(slurp(out / "sweep.json"));
  EXPECT_EQ(doc["experiment"], kQuickstart.lexically_normal().string());
  EXPECT_EQ(doc["quick"], false);
  ASSERT_EQ(doc["points"].size(), 4u);
  EXPECT_EQ(doc["points"][1]["set"], json({"memory.tier=dram", "cache.gpu_experts=128"}));

  const Csv csv = read_csv(out / "results.csv");
  ASSERT_GE(csv.header.size(), 6u);
  EXPECT_EQ(std::vector<std::string>(csv.header.begin(), csv.header.begin() + 4),
            (std::vector<std::string>{"point", "status", "param.memory.tier", "param.cache.gpu_experts"}));
  for (const char* column : {"model", "tier", "tokens", "expert_switch_s.p50", "token_latency_s.p99", "bytes.remote",
                             "tokens_per_s", "cache_hit_rate", "page_faults", "user_kernel_transitions", "pool_bytes"})
    EXPECT_NE(std::find(csv.header.begin(), csv.header.end(), column), csv.header.end()) << column;
  ASSERT_EQ(csv.rows.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const auto& row = csv.rows[i];
    EXPECT_EQ(row.at("point"), "p000" + std::to_string(i));
    EXPECT_EQ(row.at("status"), "ok");
    EXPECT_EQ(row.at("param.memory.tier"), params[i].first);
    EXPECT_EQ(row.at("param.cache.gpu_experts"), params[i].second);
    EXPECT_EQ(row.at("tier"), params[i].first);
    EXPECT_EQ(row.at("tokens"), "32");
    expect_row_matches_summary(row, out / row.at("point") / "summary.json");
  }
}

TEST_F(SweepTest, ResumeRunsOnlyUnfinishedPoints) {
  const std::vector<std::string> sweep{"--sweep", "memory.tier=dram,rmai", "--sweep", "cache.gpu_experts=64,128"};
  Result r = sweep_quickstart("out", sweep);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const fs::path out = dir_ / "out";
  const auto mtime0 = fs::last_write_time(out / "p0000" / "summary.json");
  const auto mtime3 = fs::last_write_time(out / "p0003" / "summary.json");
  const std::string row0 = split(slurp(out / "results.csv"), '\n')[1];
  // An interruption: one point never started, another was killed before its summary was written.
  fs::remove_all(out / "p0001");
  fs::remove(out / "p0002" / "summary.json");

  r = sweep_quickstart("out", sweep);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.err.find("2 already done, 2 to run"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("p0000 ok"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("p0001 ok"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("p0002 ok"), std::string::npos) << r.err;
  EXPECT_EQ(fs::last_write_time(out / "p0000" / "summary.json"), mtime0);
  EXPECT_EQ(fs::last_write_time(out / "p0003" / "summary.json"), mtime3);
  EXPECT_TRUE(fs::exists(out / "p0001" / "summary.json"));
  EXPECT_TRUE(fs::exists(out / "p0002" / "summary.json"));
  const Csv csv = read_csv(out / "results.csv");
  ASSERT_EQ(csv.rows.size(), 4u);
  for (const auto& row : csv.rows) EXPECT_EQ(row.at("status"), "ok");
  EXPECT_EQ(split(slurp(out / "results.csv"), '\n')[1], row0);

  // Another sweep into the same directory is refused.
  r = sweep_quickstart("out", {"--sweep", "memory.tier=dram,cxl"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("holds a different sweep; use another --out"), std::string::npos) << r.err;
  r = sweep_quickstart("out", {"--sweep", "memory.tier=dram,rmai", "--sweep", "cache.gpu_experts=64,128", "--quick"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
}

TEST_F(SweepTest, AnInvalidCombinationFailsOnlyItsPoint) {
  // Mixtral has 256 routed experts, so 512 cache slots only fit OLMoE (1024).
  const Result r = sweep_quickstart("out", {"--sweep", "model=mixtral-8x7b,olmoe-1b-7b", "--sweep", "cache.gpu_experts=64,512"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  const fs::path out = dir_ / "out";
  EXPECT_NE(r.err.find("p0001 (model=mixtral-8x7b, cache.gpu_experts=512): error:"), std::string::npos) << r.err;
  EXPECT_NE(slurp(out / "p0001" / "error.log").find("cache larger than the model"), std::string::npos);
  EXPECT_FALSE(fs::exists(out / "p0001" / "summary.json"));
  const Csv csv = read_csv(out / "results.csv");
  ASSERT_EQ(csv.rows.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const auto& row = csv.rows[i];
    EXPECT_EQ(row.at("status"), i == 1 ? "failed" : "ok");
    if (i == 1) {
      EXPECT_EQ(row.at("param.model"), "mixtral-8x7b");
      EXPECT_EQ(row.at("param.cache.gpu_experts"), "512");
      EXPECT_EQ(row.at("tokens"), "");
    } else {
      expect_row_matches_summary(row, out / row.at("point") / "summary.json");
    }
  }
}

TEST_F(SweepTest, APointFailingAtRunTimeDoesNotStopTheOthers) {
  // The trace file exists, so the point passes validation; its content is read only by the run.
  const fs::path bad = write("bad.csv", "not a trace\n");
  const fs::path good = kSourceDir / "traces" / "samples" / "mixtral-8x7b-synthetic-256.csv";
  const Result r = sweep_quickstart("out", {"--sweep", "trace.file=" + bad.string() + "," + good.string(), "--sweep",
                                            "memory.tier=dram,rmai"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  const fs::path out = dir_ / "out";
  for (const char* failed : {"p0000", "p0001"}) {
    EXPECT_NE(slurp(out / failed / "error.log").find("bad.csv:1"), std::string::npos) << failed;
    EXPECT_NE(r.err.find(std::string(failed) + " (trace.file="), std::string::npos) << r.err;
  }
  for (const char* ok : {"p0002", "p0003"}) {
    EXPECT_TRUE(fs::exists(out / ok / "summary.json")) << ok;
    EXPECT_FALSE(fs::exists(out / ok / "error.log")) << ok;
  }
  const Csv csv = read_csv(out / "results.csv");
  ASSERT_EQ(csv.rows.size(), 4u);
  EXPECT_EQ(csv.rows[0].at("status"), "failed");
  EXPECT_EQ(csv.rows[1].at("status"), "failed");
  EXPECT_EQ(csv.rows[2].at("status"), "ok");
  EXPECT_EQ(csv.rows[3].at("param.memory.tier"), "rmai");
  EXPECT_EQ(csv.rows[3].at("tier"), "rmai");
}

// A stand-in for Slurm's sbatch: runs every task of the script's job array, one after the other.
constexpr const char* kFakeSbatch = R"(#!/bin/sh
script="$1"
range=$(sed -n 's/^#SBATCH --array=//p' "$script")
i=${range%-*}
last=${range#*-}
while [ "$i" -le "$last" ]; do
  SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_JOB_ID=42 /bin/bash "$script" > "$(dirname "$script")/slurm-42_$i.out" 2>&1
  i=$((i + 1))
done
echo "Submitted batch job 42"
)";

TEST_F(SweepTest, SlurmJobArrayCollectsLikeALocalSweep) {
  const std::vector<std::string> sweep{"--sweep", "memory.tier=dram,rmai", "--sweep", "cache.gpu_experts=64,128"};
  Result r = sweep_quickstart("slurm", {sweep[0], sweep[1], sweep[2], sweep[3], "--emit", "slurm"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const fs::path out = dir_ / "slurm";
  EXPECT_NE(r.out.find("sbatch '" + (out / "sweep.slurm").string() + "'"), std::string::npos) << r.out;
  const std::string script = slurp(out / "sweep.slurm");
  EXPECT_NE(script.find("#SBATCH --array=0-3\n"), std::string::npos) << script;
  EXPECT_NE(script.find("#SBATCH --job-name=rmai-quickstart\n"), std::string::npos) << script;
  EXPECT_NE(script.find("--point \"$SLURM_ARRAY_TASK_ID\""), std::string::npos) << script;
  EXPECT_FALSE(fs::exists(out / "p0000"));  // nothing runs before the job is submitted

  r = run({"sweep", "--collect", out.string()});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_NE(r.err.find("4 missing"), std::string::npos) << r.err;
  EXPECT_EQ(read_csv(out / "results.csv").rows.at(0).at("status"), "missing");

  const fs::path bin = write("bin/sbatch", kFakeSbatch);
  fs::permissions(bin, fs::perms::owner_all);
  const std::string command = "cd '" + dir_.string() + "' && PATH='" + bin.parent_path().string() +
                              "':\"$PATH\" sbatch slurm/sweep.slurm > submit.log 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << slurp(dir_ / "submit.log");
  EXPECT_NE(slurp(out / "slurm-42_3.out").find("p0003 ok"), std::string::npos) << slurp(out / "slurm-42_3.out");

  r = run({"sweep", "--collect", out.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  r = sweep_quickstart("local", sweep);
  ASSERT_EQ(r.exit_code, 0) << describe(r);

  // The same table, but for the wall-clock time each run measured.
  const Csv slurm = read_csv(out / "results.csv");
  const Csv local = read_csv(dir_ / "local" / "results.csv");
  EXPECT_EQ(slurm.header, local.header);
  ASSERT_EQ(slurm.rows.size(), local.rows.size());
  for (std::size_t i = 0; i < local.rows.size(); ++i) {
    auto a = slurm.rows[i], b = local.rows[i];
    a.erase("wall_time_s"), b.erase("wall_time_s");
    EXPECT_EQ(a, b) << "row " << i;
  }
}

// sbatch splits an #SBATCH line at whitespace and Slurm expands '%' in --output: the log's path goes
// in double quotes with '%' doubled. A backslash would turn Slurm's %A_%a off (every task writing
// one file): such a directory is refused before anything is written. tests/slurm/run.sh submits
// such a script to a real Slurm.
TEST_F(SweepTest, TheSlurmScriptQuotesItsLogPathAndRefusesABackslash) {
  const fs::path out = dir_ / "my sweeps 100%" / "a#b";
  Result r = sweep_quickstart(out.lexically_relative(dir_).string(), {"--emit", "slurm"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const std::string script = slurp(out / "sweep.slurm");
  EXPECT_NE(script.find("#SBATCH --output=\"" + (dir_ / "my sweeps 100%%" / "a#b").string() + "/slurm-%A_%a.out\"\n"),
            std::string::npos)
      << script;

  r = sweep_quickstart("back\\slash", {"--emit", "slurm"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("--out: '" + (dir_ / "back\\slash").string() + "': a Slurm job array cannot write"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "back\\slash"));
}

// Beside a swept parameter with a unit, its value in SI base units as rmai parses it (the plots read
// these); parameters without a unit get no such column.
TEST_F(SweepTest, ParametersWithAUnitAlsoGoInSiUnits) {
  const Result r = sweep_quickstart("out", {"--sweep", "platform.nic.bandwidth=100Gbps,25GBps", "--sweep",
                                            "memory.rmai.region_chunk=expert,32MiB", "--sweep", "cache.gpu_experts=64"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Csv csv = read_csv(dir_ / "out" / "results.csv");
  EXPECT_EQ(std::vector<std::string>(csv.header.begin(), csv.header.begin() + 7),
            (std::vector<std::string>{"point", "status", "param.platform.nic.bandwidth", "param_si.platform.nic.bandwidth",
                                      "param.memory.rmai.region_chunk", "param_si.memory.rmai.region_chunk",
                                      "param.cache.gpu_experts"}));
  EXPECT_EQ(std::count(csv.header.begin(), csv.header.end(), "param_si.cache.gpu_experts"), 0);
  ASSERT_EQ(csv.rows.size(), 4u);
  const auto number = [](const std::string& text) { return std::stod(text); };
  EXPECT_DOUBLE_EQ(number(csv.rows[0].at("param_si.platform.nic.bandwidth")), 100e9 / 8);  // bits/s to bytes/s
  EXPECT_DOUBLE_EQ(number(csv.rows[2].at("param_si.platform.nic.bandwidth")), 25e9);
  EXPECT_DOUBLE_EQ(number(csv.rows[0].at("param_si.memory.rmai.region_chunk")), 0);  // "expert"
  EXPECT_DOUBLE_EQ(number(csv.rows[1].at("param_si.memory.rmai.region_chunk")), 32.0 * 1024 * 1024);
  EXPECT_EQ(csv.rows[1].at("param.memory.rmai.region_chunk"), "32MiB");
}

// --- interruptions ---------------------------------------------------------------------------------

// The `rmai run` processes writing points of the sweep in `out` (their --out names the point).
std::vector<pid_t> runs_into(const fs::path& out) { return processes_mentioning((out / "p0").string()); }

TEST_F(SweepTest, KillNineOfASweepTakesItsRunsWithItAndTheResumeCompletesTheSweep) {
  // Three points of about 2 s each, two at once, killed while the first two run.
  const auto sweep_into = [&](const fs::path& out) {
    return std::vector<std::string>{"sweep", kQuickstart.string(), "--set", "trace.tokens=4000", "--sweep",
                                    "memory.tier=dram,rmai,cxl", "--jobs", "2", "--out", out.string()};
  };
  const fs::path out = dir_ / "out";
  const pid_t sweep = rmai::testing::start(sweep_into(out), dir_ / "killed.log");
  ASSERT_TRUE(eventually([&] { return runs_into(out).size() == 2; }, 30)) << slurp(dir_ / "killed.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (const char* point : {"p0000", "p0001"})
    ASSERT_FALSE(fs::exists(out / point / "summary.json")) << point << " finished before the kill: the test proves nothing";
  ASSERT_EQ(::kill(sweep, SIGKILL), 0);
  ASSERT_EQ(::waitpid(sweep, nullptr, 0), sweep);
  EXPECT_TRUE(eventually([&] { return runs_into(out).empty(); }, 10))
      << runs_into(out).size() << " runs outlived their sweep";
  for (const char* point : {"p0000", "p0001"})
    EXPECT_FALSE(fs::exists(out / point / "summary.json")) << point << ": a run outlived its sweep and finished it";

  const Result resumed = run(sweep_into(out));
  ASSERT_EQ(resumed.exit_code, 0) << describe(resumed);
  EXPECT_NE(resumed.err.find("0 already done, 3 to run"), std::string::npos) << resumed.err;
  EXPECT_EQ(resumed.err.find("busy"), std::string::npos) << resumed.err;
  EXPECT_TRUE(temporaries_under(out).empty());
  // The same table as a sweep never interrupted, but for the wall-clock time each run measured.
  const Result fresh = run(sweep_into(dir_ / "fresh"));
  ASSERT_EQ(fresh.exit_code, 0) << describe(fresh);
  const Csv got = read_csv(out / "results.csv"), expected = read_csv(dir_ / "fresh" / "results.csv");
  EXPECT_EQ(got.header, expected.header);
  ASSERT_EQ(got.rows.size(), 3u);
  ASSERT_EQ(expected.rows.size(), 3u);
  for (std::size_t i = 0; i < got.rows.size(); ++i) {
    auto a = got.rows[i], b = expected.rows[i];
    EXPECT_EQ(a.at("status"), "ok") << i;
    a.erase("wall_time_s"), b.erase("wall_time_s");
    EXPECT_EQ(a, b) << "row " << i;
  }
}

TEST_F(SweepTest, APointAnotherProcessWritesIsNotStartedAndTheSweepSaysWho) {
  const std::vector<std::string> sweep{"--sweep", "memory.tier=dram,rmai"};
  ASSERT_EQ(sweep_quickstart("out", sweep).exit_code, 0);
  const fs::path out = dir_ / "out", point = out / "p0001", lock = point / ".lock";
  fs::remove(point / "summary.json");
  const auto switches = fs::last_write_time(point / "switches.csv");
  // A writer the last sweep left running: this process holds the point's lock, as such a run would.
  const int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << lock;
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const std::string pid = std::to_string(::getpid()) + "\n";
  ASSERT_EQ(::ftruncate(fd, 0), 0);
  ASSERT_EQ(::pwrite(fd, pid.data(), pid.size(), 0), static_cast<ssize_t>(pid.size()));
  const std::string busy = "busy: PID " + std::to_string(::getpid()) + " is still writing it (" + lock.string() + ")";

  Result r = sweep_quickstart("out", sweep);
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_NE(r.err.find("p0001 (memory.tier=rmai) not started: " + busy), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("  p0001 (memory.tier=rmai): " + busy), std::string::npos) << r.err;
  EXPECT_EQ(fs::last_write_time(point / "switches.csv"), switches) << "the sweep wrote into a busy point";
  EXPECT_FALSE(fs::exists(point / "summary.json"));
  EXPECT_FALSE(fs::exists(point / "error.log"));
  EXPECT_EQ(read_csv(out / "results.csv").rows.at(1).at("status"), "missing");
  r = run({"sweep", "--collect", out.string()});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_NE(r.err.find("  p0001 (memory.tier=rmai): " + busy), std::string::npos) << r.err;

  // The writer gone, SIGKILLed mid-write (a temporary left): the next sweep runs the point and
  // removes what it left.
  ::close(fd);
  std::ofstream(point / "switches.csv.tmp.99999") << "half";
  r = sweep_quickstart("out", sweep);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.err.find("1 already done, 1 to run"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(point / "summary.json"));
  EXPECT_TRUE(temporaries_under(out).empty());
}

}  // namespace
