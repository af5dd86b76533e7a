// The fast path (sim.fast_path, sim/replay.cpp's Executor) against the plain SimGrid path: on
// randomized small platforms (nodes, servers, pool ports, tiers, region chunks, batch, host cache,
// platform presets) every switch, every token latency and every count must be the same to 1e-9
// relative. The golden set checks the same on its cases (CTest golden_plain_path).
//
// Where several nodes contend, SimGrid's own equivalent settings (network/optim Full instead of
// Lazy, our default; surf/precision 1e-10 or 1e-8 instead of 1e-9 s) already give dates that differ
// beyond 1e-9, and the contention amplifies any difference in the last bit of a date
// (docs/architecture.md, "The fast path"). There the counts must still be equal and the run's
// simulated time and mean switch within kSpreads times the largest difference those settings, or a
// 1e-10 change of the contended links' bandwidth, make. The fast path's fluid model is checked
// against closed forms in sim_fabric_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <random>

#include "config/errors.hpp"
#include "sim_support.hpp"

namespace rmai {
namespace {

using testing::quickstart;
using testing::simulate_in_child;
using testing::synthetic_trace;

constexpr double kTolerance = 1e-9;
// Under contention: how many times the spread of equivalent runs (below) the fast path may differ
// by. SimGrid's own settings alone are a poor sample of that spread (in one case only one of the
// three moves anything, by 0.4%, where a 1e-10 change of the contended links' bandwidth moves the
// time by 1.5%), so the contended links 1e-10 faster and slower are equivalent runs too: a model
// that shares links otherwise than SimGrid does still goes beyond it (without CM02's
// latency-weighted shares, sim/fabric.hpp, every chaotic case moved by 1.3-2.3%, one side).
constexpr double kSpreads = 2;
constexpr double kPerturbation = 1e-10;

bool close(double a, double b) { return std::abs(a - b) <= kTolerance * std::max(std::abs(a), std::abs(b)); }

// One random experiment: what the fast path decides on (nodes, routes shared or not, plans with
// overlapping chunks, host-cache hits) varied, small enough for a test.
std::vector<std::string> random_sets(std::mt19937& random) {
  auto pick = [&](std::vector<std::string> options) {
    return options[std::uniform_int_distribution<std::size_t>(0, options.size() - 1)(random)];
  };
  std::vector<std::string> sets{
      "memory.tier=" + pick(spec::tier_names()),
      "nodes=" + pick({"1", "2", "3", "5"}),
      "platform.memory_servers=" + pick({"1", "2", "3"}),
      "platform.cxl_pool.ports=" + pick({"1", "2"}),
      "platform.nic=" + pick({"connectx-5-100g", "connectx-7-400g"}),
      "model=" + pick({"mixtral-8x7b", "olmoe-1b-7b"}),
      "trace.tokens=" + pick({"6", "12"}),
      "trace.sequences=" + pick({"1", "4"}),
      "serving.batch=" + pick({"1", "2", "4"}),
      "seed=" + std::to_string(random() % 1000),
  };
  sets.push_back(sets[5] == "model=mixtral-8x7b" ? "cache.gpu_experts=" + pick({"16", "64"})
                                                  : "cache.gpu_experts=" + pick({"64", "256"}));
  if (sets[0] == "memory.tier=rmai") sets.push_back("memory.rmai.region_chunk=" + pick({"0", "32MiB"}));
  const bool fetches = sets[0] != "memory.tier=cxl" && sets[0] != "memory.tier=cxl-pool" && sets[0] != "memory.tier=dram";
  if (fetches && random() % 3 == 0) sets.push_back("cache.host_experts=" + pick({"96", "300"}));
  // A per-flow cap on DRAM, as calibrated platforms have: a FATPIPE link that a chunked region's
  // fetch and copy (of different route latencies) cross at once.
  if (random() % 3 == 0) sets.push_back("platform.dram.flow_bandwidth=" + pick({"8GBps", "20GBps"}));
  return sets;
}

double mean_switch(const testing::SimOutcome& out) {
  double sum = 0;
  for (const auto& s : out.switches) sum += s.end_s - s.start_s;
  return out.switches.empty() ? 0 : sum / double(out.switches.size());
}

std::string joined(const std::vector<std::string>& sets) {
  std::string out;
  for (const auto& s : sets) out += s + " ";
  return out;
}

TEST(FastPath, EqualsThePlainSimGridPathOnRandomPlatforms) {
  std::mt19937 random(20261202);
  int compared = 0, chaotic = 0;
  for (int i = 0; i < 40; ++i) {
    const auto sets = random_sets(random);
    spec::Experiment fast_e, plain_e;
    try {
      fast_e = quickstart(sets);
    } catch (const InputError&) {  // a random combination the schema refuses (e.g. host cache too big)
      continue;
    }
    auto plain_sets = sets;
    plain_sets.push_back("sim.fast_path=false");
    plain_e = quickstart(plain_sets);
    ASSERT_TRUE(fast_e.fast_path);
    ASSERT_FALSE(plain_e.fast_path);
    const auto trace = synthetic_trace(fast_e);
    auto fast = simulate_in_child(fast_e, trace);
    auto plain = simulate_in_child(plain_e, trace);
    // The log interleaves the nodes' switches as they are recorded, which the fast path does as
    // each node runs, ahead of the others: each node's own come in the same order on both paths.
    for (auto* out : {&fast, &plain})
      std::stable_sort(out->switches.begin(), out->switches.end(),
                       [](const auto& a, const auto& b) { return a.node < b.node; });
    SCOPED_TRACE(joined(sets));
    ++compared;
    EXPECT_EQ(fast.accesses, plain.accesses);
    EXPECT_EQ(fast.faults, plain.faults);
    EXPECT_EQ(fast.transitions, plain.transitions);
    ASSERT_EQ(fast.switches.size(), plain.switches.size());
    if (!close(fast.simulated_time, plain.simulated_time)) {
      // How far numerically equivalent runs move the plain path: SimGrid's other update mode, its
      // timing precision (default 1e-9 s) ten times finer and coarser, and the NICs and pool ports
      // (the links nodes contend for, and each node's own) 1e-10 faster or slower.
      double time_spread = 0, switch_spread = 0;
      const auto spread_to = [&](const testing::SimOutcome& other) {
        time_spread = std::max(time_spread, std::abs(other.simulated_time - plain.simulated_time));
        switch_spread = std::max(switch_spread, std::abs(mean_switch(other) - mean_switch(plain)));
      };
      for (const char* variant : {"--cfg=network/optim:Full", "--cfg=surf/precision:1e-10", "--cfg=surf/precision:1e-8"})
        spread_to(simulate_in_child(plain_e, trace, {variant}));
      for (const double scale : {1 + kPerturbation, 1 - kPerturbation}) {
        auto perturbed = plain_e;
        perturbed.platform.nic.bandwidth *= scale;
        perturbed.platform.cxl_pool.bandwidth *= scale;
        spread_to(simulate_in_child(perturbed, trace));
      }
      ASSERT_FALSE(close(plain.simulated_time + time_spread, plain.simulated_time))
          << "the fast path differs where SimGrid's own settings agree: " << fast.simulated_time << " vs "
          << plain.simulated_time;
      ++chaotic;
      EXPECT_LE(std::abs(fast.simulated_time - plain.simulated_time), kSpreads * time_spread);
      EXPECT_LE(std::abs(mean_switch(fast) - mean_switch(plain)), kSpreads * switch_spread);
      std::cout << "under contention: simulated time " << fast.simulated_time << " vs " << plain.simulated_time
                << " (equivalent runs: +-" << time_spread << "), mean switch " << mean_switch(fast) << " vs "
                << mean_switch(plain) << " (+-" << switch_spread << ")" << std::endl;
      continue;
    }
    for (std::size_t s = 0; s < fast.switches.size(); ++s) {
      const auto &a = fast.switches[s], &b = plain.switches[s];
      ASSERT_EQ(a.node, b.node);
      ASSERT_EQ(a.token, b.token);
      ASSERT_EQ(a.layer, b.layer);
      ASSERT_EQ(a.expert, b.expert);
      ASSERT_TRUE(close(a.start_s, b.start_s)) << "switch " << s << " starts " << a.start_s << " vs " << b.start_s;
      ASSERT_TRUE(close(a.end_s, b.end_s)) << "switch " << s << " ends " << a.end_s << " vs " << b.end_s;
    }
    ASSERT_EQ(fast.token_latencies.size(), plain.token_latencies.size());
    for (std::size_t t = 0; t < fast.token_latencies.size(); ++t)
      ASSERT_TRUE(close(fast.token_latencies[t], plain.token_latencies[t])) << "token " << t;
  }
  std::cout << compared << " random experiments compared, " << chaotic << " of them under contention beyond 1e-9" << std::endl;
  EXPECT_GE(compared, 24) << "too many random experiments were refused to compare enough";
  EXPECT_LE(chaotic, compared / 4) << "the fast path should be exact in most runs";
}

// A chunked region's fetch and the previous chunk's copy cross the node's DRAM at once; with a
// per-flow cap on it (calibrated platforms have one) that is a FATPIPE link two flows of different
// route latencies share, which SimGrid shares in proportion to them (sim/fabric.hpp). One node: the
// two paths must agree to 1e-9 on every switch.
TEST(FastPath, ChunkedRegionsUnderAPerFlowDramCapEqualThePlainPath) {
  for (const char* cap : {"8GBps", "20GBps"}) {
    const std::vector<std::string> sets{"memory.rmai.region_chunk=32MiB", std::string("platform.dram.flow_bandwidth=") + cap,
                                        "trace.tokens=8"};
    auto plain_sets = sets;
    plain_sets.push_back("sim.fast_path=false");
    const auto e = quickstart(sets);
    const auto trace = synthetic_trace(e);
    const auto fast = simulate_in_child(e, trace);
    const auto plain = simulate_in_child(quickstart(plain_sets), trace);
    ASSERT_GT(fast.transfers.fabric, 0u) << cap;
    ASSERT_EQ(fast.switches.size(), plain.switches.size()) << cap;
    for (std::size_t s = 0; s < fast.switches.size(); ++s)
      ASSERT_TRUE(close(fast.switches[s].end_s, plain.switches[s].end_s))
          << cap << ": switch " << s << " ends " << fast.switches[s].end_s << " vs " << plain.switches[s].end_s;
  }
}

// The fast path takes fewer SimGrid activities, which is the point; a run that needs the fluid
// model (concurrent switches on one node) must not take it.
TEST(FastPath, OnlyOneActorPerNodeTakesIt) {
  EXPECT_TRUE(quickstart({}).fast_path);
  const auto concurrent = quickstart({"memory.rmai.concurrency=2", "trace.sequences=4", "serving.batch=4"});
  const auto trace = synthetic_trace(concurrent);
  auto plain_sets = std::vector<std::string>{"memory.rmai.concurrency=2", "trace.sequences=4", "serving.batch=4",
                                             "sim.fast_path=false"};
  const auto a = simulate_in_child(concurrent, trace);
  const auto b = simulate_in_child(quickstart(plain_sets), trace);
  ASSERT_EQ(a.switches.size(), b.switches.size());
  for (std::size_t s = 0; s < a.switches.size(); ++s) EXPECT_EQ(a.switches[s].end_s, b.switches[s].end_s) << s;
}

// Which transfers the fast path times in closed form: all of them with one node; none where a
// node has more than one actor (concurrent switches, a prefetcher) or the plain path is chosen;
// with two nodes sharing a server, the fetches through its NIC are flows of the fast path's own
// fluid model (sim/fabric.hpp), no SimGrid comm, and the copies over each node's own PCIe stay
// closed-form.
TEST(FastPath, TimesInClosedFormWhatNothingElseCanShareAndOnlyThat) {
  const auto counts = [](std::vector<std::string> sets) {
    sets.push_back("trace.tokens=16");
    const auto e = quickstart(sets);
    return simulate_in_child(e, synthetic_trace(e)).transfers;
  };
  const auto one = counts({});
  EXPECT_GT(one.closed_form, 0u);
  EXPECT_EQ(one.comms, 0u);
  EXPECT_EQ(one.fabric, 0u);
  const auto plain = counts({"sim.fast_path=false"});
  EXPECT_EQ(plain.closed_form, 0u);
  EXPECT_EQ(plain.fabric, 0u);
  EXPECT_EQ(plain.comms, one.closed_form) << "the same transfers, each a comm";
  for (const auto& sets : {std::vector<std::string>{"memory.rmai.concurrency=2", "trace.sequences=4", "serving.batch=4"},
                           std::vector<std::string>{"cache.prefetch=next-layer"}}) {
    const auto c = counts(sets);
    EXPECT_EQ(c.closed_form, 0u) << sets[0];
    EXPECT_EQ(c.fabric, 0u) << sets[0];
    EXPECT_GT(c.comms, 0u) << sets[0];
  }
  const auto shared = counts({"nodes=2", "platform.memory_servers=1"});
  EXPECT_EQ(shared.comms, 0u) << "no SimGrid comm on the fast path";
  EXPECT_GT(shared.fabric, 0u) << "the fetches through the shared server's NIC";
  EXPECT_GT(shared.closed_form, 0u) << "the copies over each node's own PCIe";
  EXPECT_EQ(shared.fabric, shared.closed_form) << "one fetch and one copy per switch";
  // Overlapping chunks put two of a node's own transfers on its DRAM at once: all of them flows.
  const auto chunks = counts({"memory.rmai.region_chunk=32MiB"});
  EXPECT_EQ(chunks.comms, 0u);
  EXPECT_EQ(chunks.closed_form, 0u);
  EXPECT_GT(chunks.fabric, 0u);
}

}  // namespace
}  // namespace rmai
