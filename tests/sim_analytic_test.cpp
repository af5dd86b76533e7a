// Analytic tests: on an idle platform one expert switch takes exactly the closed form of its
// paging path (latency terms, size over the bottleneck bandwidth, fault and per-operation costs);
// switches sharing one server NIC stretch exactly as fair sharing says. The closed forms below
// are written from the presets' numbers, independently of the tier code.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "sim_support.hpp"

namespace rmai {
namespace {

using testing::quickstart;
using testing::simulate_in_child;
using testing::synthetic_trace;

double ceil_div(double a, double b) { return std::ceil(a / b); }

// Closed form of one switch of `e`'s tier on an idle platform, whole-expert chunks.
double closed_form(const spec::Experiment& e, double servers_sharing_nic = 1) {
  const auto& p = e.platform;
  const auto& os = p.os;
  const auto& tier = e.tier_params;
  const double S = e.model.expert_bytes();
  const double pages = S / os.page_size;
  const double copy_from_host =
      p.gpu.copy_launch + p.dram.latency + p.pcie.latency + S / std::min(p.dram.bandwidth, p.pcie.bandwidth);
  const double remote_data = p.nic.latency + p.dram.latency +
                             servers_sharing_nic * S / std::min(p.nic.bandwidth, p.dram.bandwidth);
  const double disk_data = p.dram.latency + S / std::min(p.nvme.bandwidth, p.dram.bandwidth);
  const double rdma_op = p.nic.op_overhead + p.nic.latency;
  // At queue depth 1 every read but the last waits for its data's trip back over the route.
  const auto return_trips = [](double reads, double depth, double route_latency) {
    return depth == 1 ? (reads - 1) * route_latency : 0.0;
  };

  if (e.tier == "dram") return copy_from_host;
  if (e.tier == "cxl")
    return p.gpu.copy_launch + p.cxl.latency + p.pcie.latency + S / std::min(p.cxl.bandwidth, p.pcie.bandwidth);
  if (e.tier == "cxl-pool")  // the pool port (shared), the node's own switch port, PCIe
    return p.gpu.copy_launch + p.cxl_pool.latency + p.pcie.latency +
           S / std::min(p.cxl_pool.bandwidth / servers_sharing_nic, p.pcie.bandwidth);
  if (e.tier == "rmai") {
    const double reads = ceil_div(S, double(tier.count("fault_batch")) * os.page_size);
    const double depth = double(tier.count("queue_depth"));
    const double map_page = tier.number("map_page");
    const double map = map_page == os.huge_page_size ? ceil_div(S, map_page) * os.huge_map : pages * os.pte_install;
    return os.fault_trap + os.fault_handler + os.region_lookup + p.nic.wakeup + ceil_div(reads, depth) * rdma_op +
           return_trips(reads, depth, p.nic.latency + p.dram.latency) + remote_data + map + copy_from_host +
           os.tlb_shootdown;
  }
  if (e.tier == "page4k") {
    const double per_fault = double(tier.count("fault_around"));
    const double faults = ceil_div(pages, per_fault);
    const double swap_path = tier.number("swap_path") > 0 ? tier.number("swap_path") : os.swap_in_path;  // 0: 'os'
    return faults * (os.fault_trap + os.fault_handler + swap_path + p.nic.wakeup + per_fault * os.pte_install) +
           faults * rdma_op + return_trips(faults, 1, p.nic.latency + p.dram.latency) + remote_data +
           copy_from_host + os.tlb_shootdown;
  }
  if (e.tier == "disk-read") {
    const double reads = ceil_div(S, tier.number("read_chunk")), depth = double(tier.count("queue_depth"));
    const double rounds = ceil_div(reads, depth);
    return rounds * (os.syscall + p.nvme.latency) + return_trips(reads, depth, p.dram.latency) + disk_data +
           copy_from_host;
  }
  if (e.tier == "disk-mmap") {
    const double readahead = tier.number("readahead"), around = tier.number("fault_around");
    const double major = ceil_div(S, readahead), minor = ceil_div(S, around) - major;
    const double map = (around / os.page_size) * os.pte_install;
    const double fault = os.fault_trap + os.fault_handler;
    return major * (fault + (readahead / os.page_size) * os.page_cache_insert + map) + minor * (fault + map) +
           ceil_div(major, double(tier.count("queue_depth"))) * p.nvme.latency +
           return_trips(major, double(tier.count("queue_depth")), p.dram.latency) + disk_data + copy_from_host +
           os.tlb_shootdown;
  }
  ADD_FAILURE() << "no closed form for tier " << e.tier;
  return 0;
}

class IdleSwitch : public ::testing::TestWithParam<std::string> {};

TEST_P(IdleSwitch, EqualsClosedForm) {
  // One token: every switch starts on an idle platform (switches of a node are sequential).
  const auto e = quickstart({"memory.tier=" + GetParam(), "trace.tokens=1"});
  const auto out = simulate_in_child(e, synthetic_trace(e));
  ASSERT_EQ(out.switches.size(), e.model.moe_layers * e.model.top_k);  // cold cache: all miss
  const double expected = closed_form(e);
  for (const auto& s : out.switches) EXPECT_NEAR(s.end_s - s.start_s, expected, 1e-9 * expected) << GetParam();
}

// Every registered tier: a new tier without a closed form above fails here.
INSTANTIATE_TEST_SUITE_P(EveryTier, IdleSwitch, ::testing::ValuesIn(spec::tier_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(IdleSwitch, HoldsOnOtherPresets) {
  // The closed form is not tied to the default numbers: 100 Gb/s NIC, deeper disk queues, fault-around.
  for (const auto& sets : std::vector<std::vector<std::string>>{
           {"memory.tier=rmai", "platform.nic=connectx-5-100g", "memory.rmai.queue_depth=1"},
           {"memory.tier=rmai", "memory.rmai.map_page=2MiB", "platform.nic.wakeup=7us"},
           {"memory.tier=page4k", "memory.page4k.fault_around=16", "platform=gen5"},
           {"memory.tier=page4k", "memory.page4k.swap_path=3us", "platform.nic.wakeup=7us"},
           {"memory.tier=disk-read", "memory.disk-read.queue_depth=1"},
           {"memory.tier=disk-read", "memory.disk-read.queue_depth=8", "memory.disk-read.read_chunk=256KiB"},
           {"memory.tier=disk-mmap", "memory.disk-mmap.readahead=2MiB", "memory.disk-mmap.queue_depth=2"}}) {
    auto all = sets;
    all.push_back("trace.tokens=1");
    const auto e = quickstart(all);
    const auto out = simulate_in_child(e, synthetic_trace(e));
    ASSERT_FALSE(out.switches.empty());
    const double expected = closed_form(e);
    for (const auto& s : out.switches) EXPECT_NEAR(s.end_s - s.start_s, expected, 1e-9 * expected) << sets[0];
  }
}

TEST(IdleSwitch, RegionChunksPipelineFetchAndCopy) {
  // With 32 MiB regions the copy of one chunk overlaps the fault and fetch of the next:
  // fetch k+1 starts once chunk k's copy has started, and copy k starts after copy k-1 ended.
  const auto e = quickstart({"memory.tier=rmai", "memory.rmai.region_chunk=32MiB", "trace.tokens=1"});
  const auto& p = e.platform;
  const auto& os = p.os;
  const double S = e.model.expert_bytes(), chunk = 32.0 * 1024 * 1024;
  double t = 0, copy_end = 0;
  std::uint64_t chunks = 0;
  for (double done = 0; done < S; done += chunk, ++chunks) {
    const double s = std::min(chunk, S - done);
    const double reads = ceil_div(s, double(e.tier_params.count("fault_batch")) * os.page_size);
    t += os.fault_trap + os.fault_handler + os.region_lookup + p.nic.wakeup +
         ceil_div(reads, double(e.tier_params.count("queue_depth"))) * (p.nic.op_overhead + p.nic.latency) +
         p.nic.latency + p.dram.latency + s / std::min(p.nic.bandwidth, p.dram.bandwidth);
    t += (s / os.page_size) * os.pte_install + p.gpu.copy_launch;
    t = std::max(t, copy_end);
    copy_end = t + p.dram.latency + p.pcie.latency + s / std::min(p.dram.bandwidth, p.pcie.bandwidth);
  }
  const double expected = copy_end + os.tlb_shootdown;
  const auto out = simulate_in_child(e, synthetic_trace(e));
  ASSERT_FALSE(out.switches.empty());
  for (const auto& s : out.switches) {
    EXPECT_NEAR(s.end_s - s.start_s, expected, 1e-9 * expected);
    EXPECT_EQ(s.faults, chunks);
  }
  EXPECT_LT(expected, closed_form(quickstart({"memory.tier=rmai", "trace.tokens=1"})))
      << "pipelining must beat whole-expert regions on this platform";
}

class SharedNic : public ::testing::TestWithParam<int> {};

TEST_P(SharedNic, ConcurrentSwitchesTakeNTimesTheTransfer) {
  // N nodes replay the same one-token trace: their switches start together and all read from the
  // single memory server, so the server's NIC carries N flows and each gets 1/N of it.
  const int n = GetParam();
  const auto e = quickstart({"memory.tier=rmai", "trace.tokens=1", "nodes=" + std::to_string(n)});
  const auto out = simulate_in_child(e, synthetic_trace(e));
  ASSERT_EQ(out.switches.size(), std::size_t(n) * e.model.moe_layers * e.model.top_k);
  const double one = closed_form(e, 1), shared = closed_form(e, n);
  const double transfer_one = e.model.expert_bytes() / std::min(e.platform.nic.bandwidth, e.platform.dram.bandwidth);
  for (const auto& s : out.switches) EXPECT_NEAR(s.end_s - s.start_s, shared, 1e-9 * shared);
  // Everything but the data transfer is private to a node: only the transfer stretches, N-fold.
  EXPECT_NEAR((shared - one) + transfer_one, n * transfer_one, 1e-9 * n * transfer_one);
}

INSTANTIATE_TEST_SUITE_P(Nodes, SharedNic, ::testing::Values(1, 2, 4, 8));

class SharedPoolPort : public ::testing::TestWithParam<int> {};

TEST_P(SharedPoolPort, ConcurrentSwitchesShareThePort) {
  // N nodes switch the same experts at once: each expert is read through one pool port, which the
  // N flows share, so the pool contends like the memory server's NIC.
  const int n = GetParam();
  const auto e = quickstart({"memory.tier=cxl-pool", "trace.tokens=1", "nodes=" + std::to_string(n)});
  const auto out = simulate_in_child(e, synthetic_trace(e));
  ASSERT_EQ(out.switches.size(), std::size_t(n) * e.model.moe_layers * e.model.top_k);
  const double shared = closed_form(e, n);
  for (const auto& s : out.switches) EXPECT_NEAR(s.end_s - s.start_s, shared, 1e-9 * shared);
  if (n > 1) {
    EXPECT_GT(shared, 1.5 * closed_form(e, 1));
  }
}

INSTANTIATE_TEST_SUITE_P(Nodes, SharedPoolPort, ::testing::Values(1, 2, 8));

TEST(SharedNic, PrivateTiersSeeNoContention) {
  // Disk and DRAM are per node: four nodes switch exactly as fast as one.
  for (const std::string tier : {"dram", "disk-read"}) {
    const auto e = quickstart({"memory.tier=" + tier, "trace.tokens=1", "nodes=4"});
    const auto out = simulate_in_child(e, synthetic_trace(e));
    const double expected = closed_form(e);
    for (const auto& s : out.switches) EXPECT_NEAR(s.end_s - s.start_s, expected, 1e-9 * expected) << tier;
  }
}

}  // namespace
}  // namespace rmai
