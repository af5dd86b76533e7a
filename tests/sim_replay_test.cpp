// Replay tests: what a user reads off a run must add up (accesses, switches, faults, bytes, token
// latencies), results must be deterministic, and on the shipped defaults the tiers must order as
// the paper's argument says.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "sim_support.hpp"

namespace rmai {
namespace {

using testing::quickstart;
using testing::simulate_in_child;
using testing::synthetic_trace;

double median_switch(const testing::SimOutcome& out) {
  std::vector<double> d;
  for (const auto& s : out.switches) d.push_back(s.end_s - s.start_s);
  return metrics::summarize(d).p50;
}

TEST(Replay, CountsAddUp) {
  const auto e = quickstart({"trace.tokens=64", "memory.tier=rmai"});
  const auto trace = synthetic_trace(e);
  const auto out = simulate_in_child(e, trace);
  EXPECT_EQ(out.accesses, 64u * e.model.moe_layers * e.model.top_k);
  ASSERT_FALSE(out.switches.empty());
  EXPECT_LT(out.switches.size(), out.accesses) << "a 64-slot cache must hit sometimes";
  EXPECT_EQ(out.faults, out.switches.size()) << "one region fault per whole-expert switch";
  EXPECT_EQ(out.transitions, out.switches.size());
  EXPECT_DOUBLE_EQ(out.bytes.remote, double(out.switches.size()) * e.model.expert_bytes());
  EXPECT_DOUBLE_EQ(out.bytes.pcie, out.bytes.remote);
  EXPECT_EQ(out.bytes.disk, 0);
  // One node replays tokens back to back: token latencies tile the simulated time.
  const double total = std::accumulate(out.token_latencies.begin(), out.token_latencies.end(), 0.0);
  EXPECT_NEAR(total, out.simulated_time, 1e-9 * out.simulated_time);
  // Every switch is for an expert the trace routed at that token and layer.
  for (const auto& s : out.switches) {
    const auto experts = trace.experts(s.token, s.layer);
    EXPECT_NE(std::find(experts.begin(), experts.end(), s.expert), experts.end());
  }
}

TEST(Replay, CacheMissesMatchAnIndependentLru) {
  // Re-derive the switches of node 0 with a plain LRU over the trace and compare one by one.
  const auto e = quickstart({"trace.tokens=48", "cache.gpu_experts=20", "cache.policy=lru"});
  const auto trace = synthetic_trace(e);
  const auto out = simulate_in_child(e, trace);
  std::vector<std::pair<std::size_t, std::uint32_t>> expected;  // (token, key)
  std::vector<std::uint32_t> lru;                               // most recent last
  for (std::size_t t = 0; t < trace.tokens(); ++t)
    for (std::uint32_t l = 0; l < e.model.moe_layers; ++l) {
      const auto experts = trace.experts(t, l);
      for (const auto x : experts) {
        const std::uint32_t key = l * e.model.experts + x;
        auto it = std::find(lru.begin(), lru.end(), key);
        if (it != lru.end()) {
          lru.erase(it);
        } else {
          expected.emplace_back(t, key);
          if (lru.size() == e.cache.gpu_experts) lru.erase(lru.begin());
        }
        lru.push_back(key);
      }
    }
  ASSERT_EQ(out.switches.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(out.switches[i].token, expected[i].first);
    EXPECT_EQ(out.switches[i].layer * e.model.experts + out.switches[i].expert, expected[i].second);
  }
}

TEST(Replay, SameInputsSameResults) {
  const auto e = quickstart({"trace.tokens=32", "nodes=2"});
  const auto a = simulate_in_child(e, synthetic_trace(e));
  const auto b = simulate_in_child(e, synthetic_trace(e));
  ASSERT_EQ(a.switches.size(), b.switches.size());
  for (std::size_t i = 0; i < a.switches.size(); ++i) {
    EXPECT_EQ(a.switches[i].start_s, b.switches[i].start_s);
    EXPECT_EQ(a.switches[i].end_s, b.switches[i].end_s);
  }
  EXPECT_EQ(a.simulated_time, b.simulated_time);
}

TEST(Replay, TierOrderingOnShippedDefaults) {
  // Mixtral-8x7B on the default (paper-like) platform: the claims this project checks.
  std::map<std::string, double> p50;
  for (const std::string tier : {"dram", "cxl", "rmai", "page4k", "disk-read", "disk-mmap"}) {
    const auto e = quickstart({"memory.tier=" + tier, "trace.tokens=32"});
    p50[tier] = median_switch(simulate_in_child(e, synthetic_trace(e)));
  }
  EXPECT_LT(p50["dram"], p50["cxl"]);
  EXPECT_LE(p50["cxl"], p50["rmai"]);
  EXPECT_LT(p50["rmai"], p50["page4k"]);
  EXPECT_LT(p50["rmai"], p50["disk-read"]);
  EXPECT_LT(p50["disk-read"], p50["disk-mmap"]);
  const double ratio = p50["disk-mmap"] / p50["rmai"];
  EXPECT_GT(ratio, 8.0) << "the paper: expert switching up to 10x faster than disk";
  EXPECT_LT(ratio, 12.5);
}

TEST(Replay, MoreMemoryServersRelieveContention) {
  // Eight nodes on one server queue on its NIC; with eight servers experts spread over them.
  const auto one = quickstart({"trace.tokens=16", "nodes=8"});
  const auto eight = quickstart({"trace.tokens=16", "nodes=8", "platform.memory_servers=8"});
  EXPECT_LT(median_switch(simulate_in_child(eight, synthetic_trace(eight))),
            median_switch(simulate_in_child(one, synthetic_trace(one))));
}

TEST(Replay, BiggerCacheFewerSwitches) {
  std::size_t previous = SIZE_MAX;
  for (const int slots : {8, 64, 192}) {
    const auto e = quickstart({"trace.tokens=32", "cache.gpu_experts=" + std::to_string(slots)});
    const auto n = simulate_in_child(e, synthetic_trace(e)).switches.size();
    EXPECT_LT(n, previous) << slots << " slots";
    previous = n;
  }
}

TEST(Replay, FaultCountsFollowThePagingPath) {
  const auto count = [](const std::string& tier) {
    const auto e = quickstart({"memory.tier=" + tier, "trace.tokens=4"});
    const auto out = simulate_in_child(e, synthetic_trace(e));
    return std::make_pair(out, e);
  };
  const auto [page4k, e4k] = count("page4k");
  EXPECT_EQ(page4k.faults, page4k.switches.size() * std::uint64_t(e4k.model.expert_bytes() / 4096));
  const auto [dram, edram] = count("dram");
  EXPECT_EQ(dram.faults, 0u);
  EXPECT_EQ(dram.transitions, 0u);
  const auto [disk, edisk] = count("disk-read");
  EXPECT_EQ(disk.faults, 0u);
  EXPECT_EQ(disk.transitions, disk.switches.size() * 336u) << "352 MB in 1 MiB reads";
  EXPECT_DOUBLE_EQ(disk.bytes.disk, double(disk.switches.size()) * edisk.model.expert_bytes());
}

}  // namespace
}  // namespace rmai
