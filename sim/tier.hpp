#pragma once
// A memory tier's paging path, as a plan of simulated activities for one expert switch.
//
// A tier turns "bring expert X into node N's GPU" into chunks. Each chunk pays CPU time (traps,
// fault handling, PTE installs), optionally fetches its bytes into host memory, then is copied to
// the GPU; the copy of one chunk overlaps the fault and fetch of the next. The tier counts the page
// faults and user-kernel transitions its path takes. Replay (replay.cpp) runs the plan on SimGrid,
// where transfers share links with every other transfer in flight.
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "sim/cluster.hpp"
#include "sim/stream.hpp"
#include "config/registry.hpp"
#include "metrics/results.hpp"
#include "spec/experiment.hpp"

namespace rmai::sim {

// A stream of `ops` reads of equal size, `queue_depth` in flight, each paying `op_cost` (software
// overhead plus the request's latency) before its data moves. Simulated as the rounds of fixed
// costs, then one flow of all the bytes. At queue depth 1 each read waits for the previous one's
// data to come back, so every read but the last also pays the route's latency (the last one's is
// the flow's own): on an idle route it takes
//   ops * (op_cost + route latency) + bytes / route bandwidth,
// which is exact. Deeper queues pay ceil(ops / queue_depth) * op_cost + route latency + bytes /
// bandwidth: the return trips overlap with other reads' data, and the rounds are few, so the part
// that would really overlap with other flows is small. Under contention the data part stretches to
// the flow's fair share. (SimGrid 3.32 ignores Comm::set_rate on host-to-host comms, which rules
// out a rate-capped flow.)
struct Transfer {
  sg4::Host* from = nullptr;
  sg4::Host* to = nullptr;
  double bytes = 0;
  double fixed_time = 0;  // the rounds' fixed costs (above), before the flow

  static Transfer stream(sg4::Host* from, sg4::Host* to, double bytes, std::uint64_t ops,
                         std::uint64_t queue_depth, double op_cost);
  static Transfer copy(sg4::Host* from, sg4::Host* to, double bytes) { return {from, to, bytes, 0}; }
};

struct Chunk {
  double cpu_before = 0;  // on the node's CPU before the fetch (fault entry, syscalls)
  bool has_fetch = false;
  Transfer fetch;         // into host memory
  double cpu_after = 0;   // after the fetch, before the GPU copy (PTE installs, copy launch)
  Transfer copy;          // to the GPU
};

struct SwitchPlan {
  std::vector<Chunk> chunks;
  double cpu_end = 0;  // after the last copy (tear-down of the staging mapping)
  std::uint64_t faults = 0;
  std::uint64_t transitions = 0;
};

// Everything a tier needs to plan: the experiment (presets, tier parameters) and the cluster.
struct TierContext {
  const spec::Experiment& experiment;
  const Cluster& cluster;
};

class Tier {
 public:
  virtual ~Tier() = default;
  // Plans bringing one routed expert (dense key: layer * experts + expert) into `node`'s GPU.
  virtual SwitchPlan plan(std::uint32_t node, std::uint32_t expert_key) const = 0;
};

using TierRegistry = Registry<Tier, const TierContext&>;

// Helpers shared by the paging paths.
inline Transfer copy_to_gpu(const NodeHosts& hosts, double bytes) { return Transfer::copy(hosts.host, hosts.gpu, bytes); }
// A switch that is one copy launch and one copy straight to the GPU: the dram and cxl tiers, and a
// host-cache hit of any tier.
inline SwitchPlan copy_plan(sg4::Host* from, sg4::Host* gpu, double bytes, double copy_launch) {
  SwitchPlan plan;
  Chunk chunk;
  chunk.cpu_before = copy_launch;
  chunk.copy = Transfer::copy(from, gpu, bytes);
  plan.chunks.push_back(chunk);
  return plan;
}
// The memory server holding an expert: experts are spread over the servers round robin.
inline sg4::Host* server_of(const Cluster& cluster, std::uint32_t expert_key) {
  return cluster.server(expert_key % cluster.servers());
}
inline double rdma_read_cost(const spec::Nic& nic) { return rdma_read_cost(nic.op_overhead, nic.latency); }

}  // namespace rmai::sim
