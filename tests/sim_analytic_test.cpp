// Analytic tests: on an idle platform one expert switch takes exactly the closed form of its
// paging path (latency terms, size over the bottleneck bandwidth, fault and per-operation costs);
// switches sharing one server NIC stretch exactly as fair sharing says. The closed forms below
// are written from the presets' numbers, independently of the tier code.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "sim_support.hpp"
#include "traces/stats.hpp"

namespace rmai {
namespace {

using testing::quickstart;
using testing::simulate_in_child;
using testing::synthetic_trace;

double ceil_div(double a, double b) { return std::ceil(a / b); }

// A test name from a tier's name (gtest names take no '-').
std::string tier_test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// The copy of one expert from host memory to the GPU on an idle platform (what a host-cache hit
// costs), with `concurrent` such copies of the node sharing its links.
double host_copy(const spec::Experiment& e, double concurrent = 1) {
  const auto& p = e.platform;
  return p.gpu.copy_launch + p.dram.latency + p.pcie.latency +
         concurrent * e.model.expert_bytes() / std::min(p.dram.bandwidth, p.pcie.bandwidth);
}

// Closed form of one switch of `e`'s tier on an idle platform, whole-expert chunks. `concurrent`
// switches of one node that start together (memory.<tier>.concurrency) run in lockstep and share
// every link of theirs, so each moves its data at 1/concurrent of every bandwidth.
double closed_form(const spec::Experiment& e, double servers_sharing_nic = 1, double concurrent = 1) {
  const auto& p = e.platform;
  const auto& os = p.os;
  const auto& tier = e.tier_params;
  const double S = e.model.expert_bytes();
  const double D = concurrent * S;  // the data each switch's flows share links with
  const double pages = S / os.page_size;
  const double copy_from_host = host_copy(e, concurrent);
  const double remote_data = p.nic.latency + p.dram.latency +
                             servers_sharing_nic * D / std::min(p.nic.bandwidth, p.dram.bandwidth);
  const double disk_data = p.dram.latency + D / std::min(p.nvme.bandwidth, p.dram.bandwidth);
  const double rdma_op = p.nic.op_overhead + p.nic.latency;
  // At queue depth 1 every read but the last waits for its data's trip back over the route.
  const auto return_trips = [](double reads, double depth, double route_latency) {
    return depth == 1 ? (reads - 1) * route_latency : 0.0;
  };

  if (e.tier == "dram") return copy_from_host;
  if (e.tier == "cxl")
    return p.gpu.copy_launch + p.cxl.latency + p.pcie.latency + D / std::min(p.cxl.bandwidth, p.pcie.bandwidth);
  if (e.tier == "cxl-pool")  // the pool port (shared), the node's own switch port, PCIe
    return p.gpu.copy_launch + p.cxl_pool.latency + p.pcie.latency +
           D / std::min(p.cxl_pool.bandwidth / servers_sharing_nic, p.pcie.bandwidth);
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
                         tier_test_name);

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


// ---- Serving: concurrent switches, the host cache, batched steps ----

// A trace of `sequences` one-token sequences of `e`'s shape; sequence i routes experts
// routing(i, layer) at every layer.
traces::RoutingTrace trace_of(const spec::Experiment& e, std::uint32_t sequences, std::uint32_t tokens_each,
                              const std::function<std::vector<std::uint16_t>(std::uint32_t, std::uint32_t)>& routing) {
  traces::RoutingTrace trace({e.model.moe_layers, e.model.top_k, e.model.experts});
  for (std::uint32_t index = 0; index < tokens_each; ++index)
    for (std::uint32_t seq = 0; seq < sequences; ++seq) {
      traces::Token token{seq, index, {}, {}};
      for (std::uint32_t layer = 0; layer < e.model.moe_layers; ++layer) {
        const auto experts = routing(seq, layer);
        token.experts.insert(token.experts.end(), experts.begin(), experts.end());
      }
      trace.append(token);
    }
  return trace;
}

// Mixtral, top-2 of 8: four one-token sequences routed to disjoint pairs, so that each layer of
// the one decode step misses all 8 experts.
traces::RoutingTrace disjoint_pairs(const spec::Experiment& e) {
  return trace_of(e, 4, 1, [](std::uint32_t seq, std::uint32_t) {
    return std::vector<std::uint16_t>{std::uint16_t(2 * seq), std::uint16_t(2 * seq + 1)};
  });
}

class ConcurrentStep : public ::testing::TestWithParam<std::string> {};

TEST_P(ConcurrentStep, EqualsClosedFormOfItsWaves) {
  // One step, U = 8 missing experts per layer, concurrency C = 3: the switches go in waves of 3, 3
  // and 2 that start together; a wave of n runs in lockstep, each switch at 1/n of every link.
  const std::string tier = GetParam();
  const auto e = quickstart({"memory.tier=" + tier, "serving.batch=4", "memory." + tier + ".concurrency=3"});
  const auto out = simulate_in_child(e, disjoint_pairs(e));
  ASSERT_EQ(out.switches.size(), e.model.moe_layers * 8u);
  double switching = 0;
  for (std::uint32_t layer = 0; layer < e.model.moe_layers; ++layer) {
    std::vector<metrics::SwitchRecord> of_layer;
    for (const auto& s : out.switches)
      if (s.layer == layer) of_layer.push_back(s);
    ASSERT_EQ(of_layer.size(), 8u);
    std::sort(of_layer.begin(), of_layer.end(), [](const auto& a, const auto& b) { return a.start_s < b.start_s; });
    const double layer_start = of_layer.front().start_s;
    for (const std::size_t wave_start : {0u, 3u, 6u}) {
      const std::size_t n = wave_start == 6 ? 2 : 3;
      const double expected = closed_form(e, 1, double(n));
      for (std::size_t i = wave_start; i < wave_start + n; ++i) {
        EXPECT_NEAR(of_layer[i].start_s, of_layer[wave_start].start_s, 1e-12) << tier << " layer " << layer;
        EXPECT_NEAR(of_layer[i].end_s - of_layer[i].start_s, expected, 1e-9 * expected) << tier << " layer " << layer;
      }
    }
    switching += of_layer.back().end_s - layer_start;
    EXPECT_NEAR(of_layer.back().end_s - layer_start, 2 * closed_form(e, 1, 3) + closed_form(e, 1, 2),
                1e-9 * switching) << tier;
  }
  // The step waited for nothing but its waves.
  const auto summary = nlohmann::json::parse(out.summary);
  EXPECT_NEAR(summary["stall_s_per_token"].get<double>() * 4, switching, 1e-9 * switching) << tier;
}

INSTANTIATE_TEST_SUITE_P(EveryTier, ConcurrentStep, ::testing::ValuesIn(spec::tier_names()),
                         tier_test_name);

TEST(ConcurrentStep, OneAtATimeIsTheSequentialReplay) {
  // Concurrency 1: the 8 misses of a layer go one after another, each at the idle closed form.
  const auto e = quickstart({"memory.tier=rmai", "serving.batch=4"});
  const auto out = simulate_in_child(e, disjoint_pairs(e));
  ASSERT_EQ(out.switches.size(), e.model.moe_layers * 8u);
  const double expected = closed_form(e);
  for (std::size_t i = 0; i < out.switches.size(); ++i) {
    EXPECT_NEAR(out.switches[i].end_s - out.switches[i].start_s, expected, 1e-9 * expected);
    if (i > 0 && out.switches[i].layer == out.switches[i - 1].layer) {
      EXPECT_NEAR(out.switches[i].start_s, out.switches[i - 1].end_s, 1e-12);
    }
  }
}

TEST(ConcurrentStep, APerFlowCapBoundsEachCopyNotTheLink) {
  // pcie.flow_bandwidth (one thread's copy on the emulator's platform) caps each flow: a wave of n
  // copies moves at min(cap, bottleneck / n) each. With the cap at 0.4 of the bottleneck, the waves
  // of 3 take their fair share (1/3), the wave of 2 and a lone copy the cap.
  const auto plain = quickstart({"memory.tier=dram"});
  const double bottleneck = std::min(plain.platform.dram.bandwidth, plain.platform.pcie.bandwidth);
  const double cap = 0.4 * bottleneck;
  const std::string flow = "platform.pcie.flow_bandwidth=" + std::to_string(std::llround(cap)) + "Bps";
  const auto e = quickstart({"memory.tier=dram", "serving.batch=4", "memory.dram.concurrency=3", flow});
  const auto& p = e.platform;
  ASSERT_NEAR(p.pcie.flow_bandwidth, cap, 1);
  const auto copy = [&](double n) {
    return p.gpu.copy_launch + p.dram.latency + p.pcie.latency +
           e.model.expert_bytes() / std::min(p.pcie.flow_bandwidth, bottleneck / n);
  };
  const auto out = simulate_in_child(e, disjoint_pairs(e));
  ASSERT_EQ(out.switches.size(), e.model.moe_layers * 8u);
  std::vector<metrics::SwitchRecord> first_layer;
  for (const auto& s : out.switches)
    if (s.layer == 0) first_layer.push_back(s);
  std::sort(first_layer.begin(), first_layer.end(), [](const auto& a, const auto& b) { return a.start_s < b.start_s; });
  ASSERT_EQ(first_layer.size(), 8u);
  for (std::size_t i = 0; i < 8; ++i) {
    const double expected = copy(i < 6 ? 3 : 2);
    EXPECT_NEAR(first_layer[i].end_s - first_layer[i].start_s, expected, 1e-9 * expected) << "switch " << i;
  }
  EXPECT_GT(copy(2), host_copy(plain, 2)) << "the cap binds the wave of 2";
  // Alone, a copy is capped too: the sequential replay of the same platform.
  const auto alone = simulate_in_child(quickstart({"memory.tier=dram", "trace.tokens=1", flow}),
                                       synthetic_trace(quickstart({"memory.tier=dram", "trace.tokens=1"})));
  ASSERT_FALSE(alone.switches.empty());
  for (const auto& s : alone.switches) EXPECT_NEAR(s.end_s - s.start_s, copy(1), 1e-9 * copy(1));
}

class HostCache : public ::testing::TestWithParam<std::string> {};

TEST_P(HostCache, AHitCostsExactlyThePcieCopy) {
  // A host cache of every expert: an expert's first switch comes from the tier and stays mapped (or
  // cached) in host memory, so it skips the tier's teardown; every later one is a host hit.
  const std::string tier = GetParam();
  const auto e = quickstart({"memory.tier=" + tier, "trace.tokens=24", "cache.host_experts=256"});
  const auto out = simulate_in_child(e, synthetic_trace(e));
  const double teardown = tier == "disk-read" ? 0.0 : e.platform.os.tlb_shootdown;
  const double from_tier = closed_form(e) - teardown, from_host = host_copy(e);
  std::set<std::pair<std::uint32_t, std::uint32_t>> seen;
  std::uint64_t hits = 0;
  for (const auto& s : out.switches) {
    const bool first = seen.insert({s.layer, s.expert}).second;
    hits += !first;
    const double expected = first ? from_tier : from_host;
    EXPECT_NEAR(s.end_s - s.start_s, expected, 1e-9 * expected) << tier << (first ? " from the tier" : " host hit");
  }
  ASSERT_GT(hits, 100u) << "the GPU cache of 64 must miss experts it held before";
  const auto summary = nlohmann::json::parse(out.summary);
  EXPECT_EQ(summary["serving"]["host_hits"].get<std::uint64_t>(), hits);
  // Host hits read nothing from the tier's medium.
  const double medium = out.bytes.remote + out.bytes.disk;
  EXPECT_NEAR(medium, double(out.switches.size() - hits) * e.model.expert_bytes(), 1e-6 * medium);
}

INSTANTIATE_TEST_SUITE_P(FetchingTiers, HostCache, ::testing::Values("rmai", "page4k", "disk-read", "disk-mmap"),
                         tier_test_name);

TEST(HostCache, AnEvictionPaysTheTeardownInsideTheSwitchThatCausesIt) {
  // A host cache of 2 slots (one layer's top-2) behind a GPU cache of 64: a switch from the tier
  // that evicts a mapped region pays its TLB shootdown; the first two, into a free host cache, do not.
  const auto e = quickstart({"memory.tier=rmai", "trace.tokens=4", "cache.host_experts=2"});
  const auto out = simulate_in_child(e, synthetic_trace(e));
  ASSERT_GT(out.switches.size(), 2u);
  const double full = closed_form(e), into_free = full - e.platform.os.tlb_shootdown;
  for (std::size_t i = 0; i < out.switches.size(); ++i) {
    const double took = out.switches[i].end_s - out.switches[i].start_s;
    if (i < 2) {
      EXPECT_NEAR(took, into_free, 1e-9 * full) << i;
    } else if (std::abs(took - host_copy(e)) > 1e-9 * full) {  // not a host hit: from the tier, evicting
      EXPECT_NEAR(took, full, 1e-9 * full) << i;
    }
  }
}

TEST(BatchedStep, IdenticalRoutingCostsOneSwitchPerExpertNotPerToken) {
  // Eight sequences of two tokens, every token routed to experts 0 and 1 at every layer: the first
  // step switches each (layer, expert) once, the second hits them all.
  const auto e = quickstart({"memory.tier=rmai", "serving.batch=8"});
  const auto out = simulate_in_child(e, trace_of(e, 8, 2, [](std::uint32_t, std::uint32_t) {
                                       return std::vector<std::uint16_t>{0, 1};
                                     }));
  EXPECT_EQ(out.switches.size(), e.model.moe_layers * e.model.top_k);
  EXPECT_EQ(out.accesses, 8u * 2 * e.model.moe_layers * e.model.top_k);
  const auto summary = nlohmann::json::parse(out.summary);
  EXPECT_EQ(summary["tokens"].get<std::uint64_t>(), 16u);
  EXPECT_EQ(summary["serving"]["decode_steps"].get<std::uint64_t>(), 2u);
  EXPECT_EQ(summary["serving"]["max_batch"].get<std::uint32_t>(), 8u);
}

TEST(BatchedStep, ComputeIsTheRooflineOfTheStep) {
  // Every token routed to experts 0 and 1 at every layer, which then stay resident (64 slots): the
  // second step of 16 tokens with 4096 tokens of context switches nothing and computes, per MoE
  // layer, the weights in use once, the FLOPs of 16 tokens and the KV-cache reads of 16 x 4096
  // tokens; written here from the model's numbers.
  const auto e = quickstart({"memory.tier=dram", "serving.batch=16", "serving.context=4096"});
  const auto& m = e.model;
  const auto& gpu = e.platform.gpu;
  const auto out = simulate_in_child(e, trace_of(e, 16, 2, [](std::uint32_t, std::uint32_t) {
                                       return std::vector<std::uint16_t>{0, 1};
                                     }));
  const auto summary = nlohmann::json::parse(out.summary);
  ASSERT_EQ(summary["serving"]["decode_steps"].get<std::uint64_t>(), 2u);
  ASSERT_EQ(out.switches.size(), 64u);  // all in the first step
  const double params = 3.0 * 4096 * 14336;  // one Mixtral expert
  const double attention = 4096.0 * (2 * 32 * 128 + 2 * 8 * 128);
  const double kv_bytes = 2.0 * 8 * 128 * 2;  // K and V of 8 heads of 128, bf16
  const double bytes = (attention + 2 * params) * 2 + 16 * 4096 * kv_bytes;
  const double flops = 16 * 2 * (attention + 2 * params) + 4.0 * 32 * 128 * 16 * 4096;
  const double layer = std::max(bytes / (gpu.hbm_bandwidth * gpu.memory_efficiency), flops / (gpu.flops * gpu.compute_efficiency));
  ASSERT_EQ(m.layers, m.moe_layers);  // no dense layers
  const auto& tokens = out.token_latencies;
  ASSERT_EQ(tokens.size(), 32u);
  EXPECT_NEAR(tokens.back(), m.moe_layers * layer, 1e-9 * tokens.back());
  // One token without context is the token-by-token roofline.
  EXPECT_EQ(sim::moe_layer_compute_time(e, {1, m.top_k, 0}), sim::moe_layer_compute_time(e));
}

TEST(BatchedStep, PrefillIsOneStepOfItsPrompt) {
  // One request with a 64-token prompt: its prefill is one step whose every layer switches the
  // prompt's union in (one at a time, each at the idle closed form) and computes 64 tokens with
  // causal attention over the prompt (64 x 63 / 2 tokens of context); TTFT is that step.
  const auto e = quickstart({"memory.tier=dram", "serving.prompt=64", "trace.tokens=4"});
  const auto trace = synthetic_trace(e);
  ASSERT_EQ(trace.tokens(), 68u);
  double expected = 0;
  for (std::uint32_t layer = 0; layer < e.model.moe_layers; ++layer) {
    std::set<std::uint16_t> in_use;
    for (std::size_t t = 0; t < trace.tokens(); ++t)
      if (trace.phase(t) == traces::Phase::Prefill)
        for (const auto x : trace.experts(t, layer)) in_use.insert(x);
    expected += double(in_use.size()) * closed_form(e) +
                sim::moe_layer_compute_time(e, {64, static_cast<std::uint32_t>(in_use.size()), 64.0 * 63 / 2});
  }
  const auto out = simulate_in_child(e, trace);
  const auto summary = nlohmann::json::parse(out.summary);
  EXPECT_EQ(summary["serving"]["prefill_steps"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(summary["serving"]["prefill_tokens"].get<std::uint64_t>(), 64u);
  EXPECT_EQ(summary["tokens"].get<std::uint64_t>(), 4u);  // decode tokens only
  EXPECT_NEAR(summary["ttft_s"]["mean"].get<double>(), expected, 1e-9 * expected);
}

TEST(BatchedStep, SwitchesPerStepFollowTheExpectedUnion) {
  // Mixtral on its calibrated MMLU generator, 16 sequences decoded together behind a cache of 64
  // slots: each step's union at every layer (about 7.9 experts) has left the cache since the last
  // step, so the step switches in its union, and the switches per step follow the trace's expected
  // union at B = 16 (traces/stats.hpp, checked on its own in trace_tools_test.cpp).
  const auto e = quickstart({"memory.tier=dram", "trace.generator=mixtral-8x7b-mmlu", "trace.tokens=2048",
                             "trace.sequences=16", "serving.batch=16"});
  const auto trace = synthetic_trace(e);
  const auto stats = traces::summarize(traces::RoutingCounts::of(trace), {16});
  ASSERT_EQ(stats.batch_union.size(), 1u);
  const double expected = stats.batch_union[0].mean * e.model.moe_layers;
  const auto out = simulate_in_child(e, trace);
  const auto summary = nlohmann::json::parse(out.summary);
  const auto steps = summary["serving"]["decode_steps"].get<std::uint64_t>();
  ASSERT_EQ(steps, 128u);
  EXPECT_NEAR(double(out.switches.size()) / double(steps), expected, 0.01 * expected);
}

}  // namespace
}  // namespace rmai
