#pragma once
// The results of one run, as both halves of the testbed report them (docs/interfaces.md):
// summary.json, switches.csv and config.resolved.yaml in one directory.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "metrics/switch_log.hpp"
#include "spec/tiers.hpp"

namespace rmai::metrics {

struct TierBytes {
  double remote = 0, disk = 0, cxl = 0, pcie = 0;
  TierBytes& operator+=(const TierBytes& o) {
    remote += o.remote, disk += o.disk, cxl += o.cxl, pcie += o.pcie;
    return *this;
  }
  // The counter of bytes read from a tier's medium (spec::MediumInfo::bytes); nullptr for host DRAM,
  // whose bytes only cross PCIe.
  double* from(spec::BytesFrom source) {
    switch (source) {
      case spec::BytesFrom::Remote: return &remote;
      case spec::BytesFrom::Disk: return &disk;
      case spec::BytesFrom::Cxl: return &cxl;
      case spec::BytesFrom::None: break;
    }
    return nullptr;
  }
};

// Capital cost of one inference node and of the memory holding its experts (a share of the pool
// when the pool is shared), and what a million tokens cost over the amortization period.
struct Cost {
  std::string prices;  // the preset
  double node_usd = 0, memory_usd_per_node = 0, usd_per_million_tokens = 0;
};

// What registering reads' destinations with the NIC cost (providers that need it: verbs). With the
// twin layout one registration per region (granule) fetched, held while it is resident and dropped
// when it is evicted, before its page frames are freed; with copy, its staging buffer once; one per
// read outside both; all again when a failed read re-creates the connection.
struct Registrations {
  bool needed = false;  // the provider wants local registrations (FI_MR_LOCAL)
  std::uint64_t registered = 0, deregistered = 0;
  std::uint64_t bytes = 0;                  // registered, over the run
  double register_s = 0, deregister_s = 0;  // total time spent in fi_mr_reg and in closing them
};

// What the emulator ran and measured besides the common metrics (summary.json "emul").
struct EmulInfo {
  std::string layout;       // how faults were served, e.g. "twin-hugetlb", "copy"; "" for the local tiers
  std::string granularity;  // page | batch | region, or "" for the local tiers
  std::string source;       // the transport, e.g. "memd 127.0.0.1:40123 via tcp"
  double scale = 1;
  std::uint64_t object_bytes = 0;  // one expert as served
  std::uint64_t objects = 0;
  std::uint64_t reads_issued = 0;  // transport reads
  // System calls of the user-space fault handler thread (poll, read, populate, UFFDIO_*): the work
  // an in-kernel RMAI does without leaving the kernel, so they are not user_kernel_transitions.
  std::uint64_t handler_system_calls = 0;
  Registrations registrations;
  Distribution fault_latency_s;    // per fault served in user space
};

// How the nodes served their sequences (summary.json "serving", step and request distributions).
struct Serving {
  std::uint32_t batch = 1, concurrency = 1;
  std::uint64_t prompt = 0, context = 0, host_experts = 0;
  std::uint64_t decode_steps = 0, prefill_steps = 0, prefill_tokens = 0;
  std::uint32_t max_batch = 0;       // most tokens one decode step took, over the nodes
  std::uint64_t host_hits = 0;       // GPU misses served by the host cache
  double prefill_stall_s = 0;        // time prefill steps waited for experts
  StreamingSummary step_latencies;  // per decode step
  StreamingSummary ttft;            // per request with a prompt
  StreamingSummary tpot;            // per request with decode tokens
};

struct RunResult {
  std::string mode, model, tier, policy, prefetch;
  std::uint32_t nodes = 0;
  std::uint64_t gpu_experts = 0;
  std::uint64_t tokens = 0;            // over all nodes
  std::uint64_t expert_accesses = 0;   // (token, layer, chosen expert) triples over all nodes
  std::uint64_t page_faults = 0;
  std::uint64_t user_kernel_transitions = 0;
  TierBytes bytes;
  double pool_bytes = 0;               // memory holding the experts: once for the pool, per node otherwise
  // Prefetching: switches started by the prefetcher (they are in `switches` too), those the layer
  // they were predicted for used, and the bytes of the others.
  std::uint64_t prefetches = 0, prefetch_hits = 0;
  double prefetch_wasted_bytes = 0;
  // Over all nodes: the time tokens waited for experts (demand switches, and prefetches still in
  // flight when their layer needed them); the rest of a token's latency is compute.
  double stall_s = 0;
  double simulated_time_s = 0;
  double wall_time_s = 0;
  std::optional<Cost> cost;
  std::optional<EmulInfo> emul;
  Serving serving;
  StreamingSummary token_latencies;  // per decode token, node after node
  SwitchLog switches;
  // Tokens of all nodes per simulated second.
  double tokens_per_s() const { return simulated_time_s > 0 ? double(tokens) / simulated_time_s : 0.0; }
  double tokens_per_s_per_node() const { return nodes ? tokens_per_s() / nodes : 0.0; }
};

// Writes the three result files into `dir` (created if needed). Each is written under a temporary
// name and renamed into place only once all three are complete, so a failed run leaves no partial
// results beside older ones. switches.csv is the log's stream when it streamed (into `dir`), else
// its records.
// Returns the text of the summary.json it wrote.
std::string write_results(const std::filesystem::path& dir, const RunResult& result, const YAML::Node& resolved_config);

// Checks, before a run, that result files can be written into `dir` (created if missing): not an
// existing file or device, and its nearest existing ancestor a directory this process can create
// entries in (tried: a probe directory made and removed, which also catches a read-only file
// system for root). Throws InputError naming `option` and the reason (strerror), or
// std::runtime_error when the place is fine but its disk is full or failing (ENOSPC, EDQUOT, EIO).
void check_results_dir(const std::filesystem::path& dir, const std::string& option);

// The summary alone, as the JSON text written to summary.json.
std::string summary_json(const RunResult& result);

}  // namespace rmai::metrics
