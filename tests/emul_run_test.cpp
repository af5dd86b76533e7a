// `rmai run --mode emul` and `rmai validate` end to end: the emulator writes the simulator's result
// files, its fault counts follow the granularity, a memd killed mid-run ends the run with a clear
// error within 5 s and no results, a wrong secret is refused, runs over tcp and verbs count the
// same, and validate compares both halves. The verbs cases skip where no RDMA device is found;
// scripts/softroce/check.sh runs them on SoftRoCE (rxe).
#include <signal.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "cli_support.hpp"
#include "emul/fabric.hpp"
#include "emul/memd_process.hpp"
#include "emul/region.hpp"
#include "posix/process.hpp"

namespace rmai::testing {
namespace {

using nlohmann::json;

// A small emulated experiment: Mixtral's experts at 1/256 (1.4 MB), two layers, 8 cache slots.
const std::vector<std::string> kSmall = {"--mode",         "emul",          "--set", "emul.scale=0.00390625",
                                         "--set",          "emul.layers=0-1", "--set", "cache.gpu_experts=8",
                                         "--set",          "trace.tokens=48"};

// For the runs that may go over verbs: a read may stall for seconds in the SoftRoCE guest (TCG on
// 2 busy cores) without anything being wrong. A dead memd is noticed by its control connection.
const std::vector<std::string> kPatient = {"--set", "emul.timeout=10s"};

template <class... More>
std::vector<std::string> cat(std::vector<std::string> head, const More&... more) {
  (head.insert(head.end(), more.begin(), more.end()), ...);
  return head;
}
using Args = std::vector<std::string>;

json summary_of(const fs::path& dir) { return json::parse(std::ifstream(dir / "summary.json")); }

std::size_t lines_of(const fs::path& file) {
  std::ifstream in(file);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

class EmulRun : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    const std::string why = emul::userfaultfd_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
  }
};

TEST_F(EmulRun, WritesTheSimulatorsResultFilesWithOneFaultPerRegion) {
  const fs::path out = dir_ / "rmai";
  const auto r = run(cat({"run", kQuickstart.string()}, kSmall, Args{"--out", out.string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json s = summary_of(out);
  EXPECT_EQ(s["mode"], "emul");
  EXPECT_EQ(s["tier"], "rmai");
  EXPECT_EQ(s["tokens"], 48);
  EXPECT_EQ(s["expert_accesses"], 48 * 2 * 2);  // tokens x layers kept x top-2
  const std::uint64_t switches = s["expert_switches"];
  EXPECT_GE(switches, 8u);  // at least the cold misses of 16 experts into 8 slots
  EXPECT_EQ(lines_of(out / "switches.csv"), switches + 1);
  EXPECT_EQ(s["page_faults"], switches);  // one fault brings in a whole expert
  EXPECT_EQ(s["emul"]["granularity"], "region");
  EXPECT_DOUBLE_EQ(s["bytes"]["remote"].get<double>(), double(switches) * s["emul"]["object_bytes"].get<double>());
  EXPECT_GT(s["expert_switch_s"]["p50"].get<double>(), 0);
  // tcp reads need no local registrations; verbs' are counted per region (the SoftRoCE checks).
  EXPECT_EQ(s["emul"]["registration"]["needed"], false);
  EXPECT_EQ(s["emul"]["registration"]["registrations"], 0);
  EXPECT_TRUE(fs::exists(out / "config.resolved.yaml"));
}

TEST_F(EmulRun, BatchGranularityFaultsOncePerBatch) {
  const fs::path out = dir_ / "batch";
  const auto r = run(cat({"run", kQuickstart.string()}, kSmall, Args{"--set", "emul.granularity=batch", "--set", "emul.batch_pages=16", "--out",
                                              out.string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json s = summary_of(out);
  const std::uint64_t object = s["emul"]["object_bytes"], switches = s["expert_switches"];
  const std::uint64_t per_switch = (object + 16 * 4096 - 1) / (16 * 4096);
  EXPECT_EQ(s["page_faults"], switches * per_switch);
  EXPECT_EQ(s["emul"]["layout"], "copy");  // huge pages only map whole regions
}

TEST_F(EmulRun, TheCxlTierHasNoEmulation) {
  const auto r = run(cat({"run", kQuickstart.string()}, kSmall, Args{"--set", "memory.tier=cxl", "--out", (dir_ / "x").string()}));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("memory.tier"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "x" / "summary.json"));
}

TEST_F(EmulRun, VerbsCountsTheSameAsTcpOnTheRemoteTiers) {
  if (const auto why = emul::provider_unavailable_reason("verbs"); !why.empty()) GTEST_SKIP() << why;
  // The provider moves bytes and decides nothing: the same trace and cache fault, switch and fetch
  // exactly alike over both. These are the emulated tiers that read through it (remote-pool); the
  // local ones (dram, disk-mmap, disk-read) never touch emul.provider, and disk-mmap's faults are
  // the kernel's readahead, which differs from one run to the next whatever the provider.
  // Smaller than kSmall (experts of 352 KB, 16 tokens: 36 switches, 3024 faults for page4k): kSmall's
  // 27216 4 KiB faults took minutes over rxe in the SoftRoCE guest.
  const Args smaller = {"--set", "emul.scale=0.0009765625", "--set", "trace.tokens=16"};
  for (const std::string tier : {"rmai", "page4k"}) {
    std::map<std::string, json> summary;
    for (const std::string provider : {"tcp", "verbs"}) {
      const fs::path out = dir_ / (tier + "-" + provider);
      const auto r = run(cat({"run", kQuickstart.string()}, kSmall, smaller, kPatient,
                             Args{"--set", "memory.tier=" + tier, "--set", "emul.provider=" + provider, "--out", out.string()}));
      ASSERT_EQ(r.exit_code, 0) << tier << " over " << provider << ":\n" << r.err;
      summary[provider] = summary_of(out);
      EXPECT_EQ(lines_of(out / "switches.csv"), summary[provider]["expert_switches"].get<std::uint64_t>() + 1) << tier;
    }
    const json& tcp = summary["tcp"];
    const json& verbs = summary["verbs"];
    EXPECT_GT(tcp.at("page_faults").get<std::uint64_t>(), 0u) << tier;
    for (const char* key : {"expert_accesses", "expert_switches", "page_faults", "user_kernel_transitions", "bytes"})
      EXPECT_EQ(tcp.at(key), verbs.at(key)) << tier << ": " << key;
    EXPECT_EQ(tcp.at("emul").at("reads_issued"), verbs.at("emul").at("reads_issued")) << tier;
    // Only verbs registers what the NIC reads into: at least one registration per region fetched.
    const json& registration = verbs.at("emul").at("registration");
    EXPECT_EQ(tcp.at("emul").at("registration").at("registrations"), 0) << tier;
    EXPECT_EQ(registration.at("needed"), true) << tier;
    // twin: each region fetched, plus the connecting read's page; copy: its staging buffer and that page.
    const bool twin = verbs.at("emul").at("layout").get<std::string>().rfind("twin", 0) == 0;
    if (twin)
      EXPECT_EQ(registration.at("registrations").get<std::uint64_t>(), verbs.at("page_faults").get<std::uint64_t>() + 1) << tier;
    else
      EXPECT_EQ(registration.at("registrations"), 2) << tier;
    EXPECT_GT(registration.at("register_s_mean").get<double>(), 0) << tier;
    std::cout << "[ registration ] " << tier << " over verbs: " << registration.dump() << std::endl;
  }
}

// Against a memd the test starts, reached over each provider.
class EmulAgainstMemd : public EmulRun, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    EmulRun::SetUp();
    if (IsSkipped()) return;
    if (const auto why = emul::provider_unavailable_reason(GetParam()); !why.empty()) GTEST_SKIP() << why;
    secret_ = emul::write_secret_file(dir_);
    emul::MemdProcessOptions m;
    m.binary = kRmai;
    m.experiment = kQuickstart;
    m.sets = {"mode=emul", "emul.scale=0.00390625", "emul.layers=0-1", "emul.provider=" + GetParam()};
    m.secret_file = secret_;
    memd_ = std::make_unique<emul::MemdProcess>(m);
  }
  std::vector<std::string> client(const fs::path& secret, const fs::path& out) const {
    return cat({"run", kQuickstart.string()}, kSmall, kPatient, Args{"--set", "emul.server=" + memd_->address(), "--set",
                                    "emul.secret_file=" + secret.string(), "--set", "emul.provider=" + GetParam(),
                                    "--out", out.string()});
  }
  fs::path secret_;
  std::unique_ptr<emul::MemdProcess> memd_;
};

TEST_P(EmulAgainstMemd, SeveralClientsShareOneServer) {
  auto a = std::async(std::launch::async, [&] { return run(client(secret_, dir_ / "a")); });
  const auto b = run(client(secret_, dir_ / "b"));
  const auto ra = a.get();
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  // The same trace and cache: the same switches, served by the same memd.
  EXPECT_EQ(summary_of(dir_ / "a")["expert_switches"], summary_of(dir_ / "b")["expert_switches"]);
}

TEST_P(EmulAgainstMemd, AWrongSecretIsRefused) {
  const fs::path wrong = dir_ / "wrong.secret";
  std::ofstream(wrong) << "0123456789abcdef0123456789abcdef\n";
  const auto r = run(client(wrong, dir_ / "w"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("refused"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "w" / "summary.json"));
}

TEST_P(EmulAgainstMemd, MemdKilledMidRunEndsTheRunWithinFiveSeconds) {
  // 4 KiB faults make the replay long enough to kill the server in the middle of it.
  std::vector<std::string> args = client(secret_, dir_ / "k");
  args.insert(args.end(), {"--set", "memory.tier=page4k", "--set", "trace.tokens=2000"});
  auto client_run = std::async(std::launch::async, [&] { return run(args); });
  // Kill it once the client is replaying: connected (connecting reads a page already), then a
  // second of faults. A TCG guest takes several seconds to get there.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (memd_->log().find(" connected") == std::string::npos && std::chrono::steady_clock::now() < deadline &&
         client_run.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout) {
  }
  ASSERT_NE(memd_->log().find(" connected"), std::string::npos) << memd_->log();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  ASSERT_EQ(client_run.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "the run ended too soon";
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(memd_->pid(), SIGKILL), 0);
  ASSERT_EQ(client_run.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "the client hangs";
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  const auto r = client_run.get();
  EXPECT_LT(seconds, 5.0);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("memd at " + memd_->address() + " is gone"), std::string::npos) << r.err;
  std::cout << "[ client ] " << GetParam() << ": " << r.err.substr(0, r.err.find('\n')) << std::endl;
  EXPECT_FALSE(fs::exists(dir_ / "k" / "summary.json"));
  EXPECT_FALSE(fs::exists(dir_ / "k" / "switches.csv"));
}

INSTANTIATE_TEST_SUITE_P(Providers, EmulAgainstMemd, ::testing::Values("tcp", "verbs"),
                         [](const auto& info) { return info.param; });

TEST(Validate, BadInputIsExitTwoBeforeAnyRun) {
  const auto no_out = run({"validate", kQuickstart.string()});
  EXPECT_EQ(no_out.exit_code, 2);
  EXPECT_NE(no_out.err.find("--out"), std::string::npos) << no_out.err;
  const auto cxl = run({"validate", kQuickstart.string(), "--out", "/nonexistent/x", "--tiers", "rmai,cxl"});
  EXPECT_EQ(cxl.exit_code, 2);
  EXPECT_NE(cxl.err.find("cxl"), std::string::npos) << cxl.err;
  const auto bad_key = run({"validate", kQuickstart.string(), "--out", "/nonexistent/x", "--set", "emul.scale=2"});
  EXPECT_EQ(bad_key.exit_code, 2);
  EXPECT_NE(bad_key.err.find("emul.scale"), std::string::npos) << bad_key.err;
  for (const std::vector<std::string>& calibrate :
       {std::vector<std::string>{"--calibrate", "fast"}, {"--calibrate", "full", "--platform", "this-vm"},
        {"--calibrate", "quick", "--sharing", "2"}}) {
    std::vector<std::string> args{"validate", kQuickstart.string(), "--out", "/nonexistent/x"};
    args.insert(args.end(), calibrate.begin(), calibrate.end());
    const auto r = run(args);
    EXPECT_EQ(r.exit_code, 2) << calibrate[1];
    EXPECT_NE(r.err.find("--calibrate"), std::string::npos) << r.err;
  }
  // --calibrate measures the experiment's scratch disk: one on tmpfs is refused before any run.
  const auto tmpfs = run({"validate", kQuickstart.string(), "--out", "/nonexistent/x", "--calibrate", "quick", "--set",
                          "emul.scratch_dir=/dev/shm"});
  EXPECT_EQ(tmpfs.exit_code, 2);
  EXPECT_NE(tmpfs.err.find("emul.scratch_dir"), std::string::npos) << tmpfs.err;
  EXPECT_NE(tmpfs.err.find("tmpfs"), std::string::npos) << tmpfs.err;
  // The sharing validation's own options do nothing without it: refused, not ignored.
  for (const char* option : {"--link-rate", "--sharing-runs"}) {
    const auto r = run({"validate", kQuickstart.string(), "--out", "/nonexistent/x", option, "2"});
    EXPECT_EQ(r.exit_code, 2) << option;
    EXPECT_NE(r.err.find(std::string(option) + " requires --sharing"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists("/nonexistent/x"));
}

// The reservation records of process `pid` (emul/huge_pages.cpp: "/run/lock/rmai-hugepages.d/PID-START",
// holding the pages it added to vm.nr_hugepages). Tests in parallel reserve pages too, so a test
// reads its own run's record rather than the system-wide count.
std::vector<fs::path> huge_page_records_of(pid_t pid) {
  std::vector<fs::path> records;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/run/lock/rmai-hugepages.d", ec))
    if (entry.path().filename().string().starts_with(std::to_string(pid) + "-")) records.push_back(entry.path());
  return records;
}

TEST_F(EmulRun, KillNineLeavesNothingBehindThatTheNextRunDoesNotReclaim) {
  // A run killed with SIGKILL mid-replay: its memd goes with it, its secret was never on disk, and
  // the huge pages it reserved are given back by the next run.
  const fs::path experiment = dir_ / "killed.yaml";
  fs::copy_file(kQuickstart, experiment);
  posix::SpawnOptions quiet;
  quiet.output = dir_ / "killed.log";
  quiet.search_path = false;
  const pid_t victim = posix::spawn(
      cat({kRmai.string(), "run", experiment.string()}, kSmall,
          Args{"--set", "trace.tokens=100000", "--set", "trace.generator=uniform", "--set", "memory.rmai.map_page=2MiB",
               "--out", (dir_ / "out").string()}),
      quiet);
  // Wait until it replays (its memd serves; as root, it holds its huge pages), then kill it.
  const bool root = ::geteuid() == 0;
  const auto replaying = [&] {
    return processes_mentioning(experiment.string()).size() >= 2 && (!root || !huge_page_records_of(victim).empty());
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!replaying() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  if (root) {
    EXPECT_FALSE(huge_page_records_of(victim).empty()) << "the run held no huge pages: nothing to reclaim";
  }
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  EXPECT_EQ(posix::wait_exit(victim), 128 + SIGKILL);
  if (root) {
    EXPECT_FALSE(huge_page_records_of(victim).empty()) << "a killed run's pages went unrecorded";
  }
  // Its memd got SIGTERM when it died and stops.
  const auto stopped = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!processes_mentioning(experiment.string()).empty() && std::chrono::steady_clock::now() < stopped)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(processes_mentioning(experiment.string()).empty()) << "memd outlived the run it served";
  EXPECT_FALSE(fs::exists(dir_ / "out" / "summary.json"));
  // The next run reclaims the dead run's pages, then gives back its own.
  const auto next = run(cat({"run", experiment.string()}, kSmall,
                            Args{"--set", "memory.rmai.map_page=2MiB", "--out", (dir_ / "next").string()}));
  ASSERT_EQ(next.exit_code, 0) << next.err;
  EXPECT_TRUE(huge_page_records_of(victim).empty()) << "the killed run's pages were not given back";
  for (const auto& entry : fs::directory_iterator(fs::temp_directory_path()))  // the secret's old home
    EXPECT_NE(entry.path().filename().string().rfind("rmai-emul-", 0), 0u) << "left behind: " << entry.path();
}

// A validation whose second tier fails (its disk store cannot be made) after the first tier's runs
// succeeded leaves nothing in --out, nor beside it, and exits 1.
TEST_F(EmulRun, AValidationThatFailsHalfWayLeavesNothing) {
  const fs::path out = dir_ / "parent" / "val";
  const auto r = run({"validate", kQuickstart.string(), "--out", out.string(), "--tiers", "dram,disk-read", "--set",
                      "emul.scale=0.00390625", "--set", "emul.layers=0-1", "--set", "cache.gpu_experts=8", "--set",
                      "trace.tokens=48", "--platform", "default", "--repeats", "1", "--set", "emul.scratch_dir=/proc"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("run 2 of 4"), std::string::npos) << "the first tier ran: " << r.err;
  EXPECT_NE(r.err.find("the emul run of tier disk-read failed"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "parent")) << "a half-done validation showed in --out";
}

TEST_F(EmulRun, ValidateComparesBothHalvesOnTheSameSwitches) {
  const fs::path out = dir_ / "val";
  const auto r = run({"validate", kQuickstart.string(), "--out", out.string(), "--tiers", "dram,rmai", "--set",
                      "emul.scale=0.00390625", "--set", "emul.layers=0-1", "--set", "cache.gpu_experts=8", "--set",
                      "trace.tokens=48", "--platform", "default", "--repeats", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(out / "validation.csv");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "tier,metric,emul,sim,rel_error,emul_min,emul_max,repeats");
  std::map<std::string, std::vector<std::string>> rows;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::vector<std::string> cells;
    std::stringstream s(line);
    for (std::string c; std::getline(s, c, ',');) cells.push_back(c);
    ASSERT_EQ(cells.size(), 8u) << line;
    EXPECT_EQ(cells[7], "2") << line;
    // The median of two runs lies within their spread.
    if (cells[2] != "nan") {
      EXPECT_LE(std::stod(cells[5]), std::stod(cells[2])) << line;
      EXPECT_GE(std::stod(cells[6]), std::stod(cells[2])) << line;
    }
    rows[cells[0] + "/" + cells[1]] = cells;
  }
  for (const char* metric : {"switch_p50_s", "switch_p99_s", "replay_s", "page_faults", "user_kernel_transitions",
                             "handler_system_calls"}) {
    EXPECT_TRUE(rows.count(std::string("rmai/") + metric)) << metric;
    EXPECT_TRUE(rows.count(std::string("dram/") + metric)) << metric;
  }
  // Same trace, same cache, same layers kept: both halves switch the same experts.
  EXPECT_EQ(rows["rmai/expert_switches"][2], rows["rmai/expert_switches"][3]);
  EXPECT_EQ(rows["rmai/expert_switches"][4], "0");
  // Counted the same way in both halves: one trap per region fault, the handler's calls apart.
  EXPECT_EQ(rows["rmai/user_kernel_transitions"][2], rows["rmai/user_kernel_transitions"][3]);
  EXPECT_EQ(rows["rmai/user_kernel_transitions"][2], rows["rmai/page_faults"][2]);
  EXPECT_NE(rows["rmai/handler_system_calls"][2], "0");
  EXPECT_EQ(rows["rmai/handler_system_calls"][3], "0");
  EXPECT_EQ(rows["dram/user_kernel_transitions"][3], "0");
  for (const char* k : {"1", "2"}) EXPECT_TRUE(fs::exists(out / "emul" / "rmai" / k / "summary.json")) << k;
  EXPECT_TRUE(fs::exists(out / "sim" / "rmai" / "summary.json"));
}

}  // namespace
}  // namespace rmai::testing
