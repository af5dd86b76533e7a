#pragma once
// Typed views of a validated experiment: what the simulator and the emulator consume.
// All quantities are SI base units (bytes, bytes/s, seconds).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/tree.hpp"
#include "spec/tiers.hpp"

namespace rmai::spec {

struct MoeModel {
  std::string name;
  std::uint32_t layers = 0;
  std::uint32_t moe_layers = 0;
  std::vector<std::uint32_t> dense_layers;  // indices of the layers without experts, ascending
  std::uint32_t experts = 0;
  std::uint32_t shared_experts = 0;
  std::uint32_t top_k = 0;
  std::uint64_t hidden_size = 0;
  std::uint64_t expert_ffn_size = 0;
  std::uint32_t expert_matrices = 0;
  double bytes_per_param = 0;
  double attention_params = 0;  // per layer
  std::uint64_t dense_ffn_size = 0;
  std::uint32_t attention_heads = 0, head_dim = 0;
  double kv_cache_bytes = 0;  // per token and layer: what one token of context costs attention to read

  double expert_scale = 1;  // < 1 only when simulating the emulator's scaled experts (experiment `experts`)

  double expert_params() const { return expert_scale * expert_matrices * hidden_size * expert_ffn_size; }
  double expert_bytes() const { return expert_params() * bytes_per_param; }
  std::uint32_t routed_experts_total() const { return moe_layers * experts; }
  // Index of the i-th MoE layer among all layers (trace layer i is model layer moe_layer_index(i)).
  std::uint32_t moe_layer_index(std::uint32_t i) const;
  // Weights that stay in HBM: attention, shared experts, dense FFN layers.
  double resident_bytes() const;
  // Bytes of weights one decode token reads in one MoE layer (attention, shared and top-k experts).
  double moe_layer_bytes_per_token() const;
  // Bytes read per token by the layers without experts (dense FFN layers).
  double dense_layers_bytes_per_token() const;
};

// Loads models/moe/<name>.yaml. `where` locates the reference for an unknown-model error.
MoeModel load_model(const std::string& name, const std::string& where);

struct Link {
  double bandwidth = 0;       // bytes/s, shared by the transfers on it
  double latency = 0;         // s
  double flow_bandwidth = 0;  // bytes/s one transfer gets at most; 0: no cap
};

struct HostDram : Link {
  double capacity = 0;  // bytes
};

struct Nic {
  double bandwidth = 0, latency = 0, op_overhead = 0, wakeup = 0;
};

struct Gpu {
  double hbm_capacity = 0, hbm_bandwidth = 0, flops = 0, memory_efficiency = 0, compute_efficiency = 0,
         copy_launch = 0;
};

struct Device {  // CXL expander or NVMe drive
  double bandwidth = 0, latency = 0, capacity = 0;
};

struct CxlPool {  // a CXL memory pool shared by the nodes through a switch
  double bandwidth = 0, latency = 0, capacity = 0;  // per port; load latency; the pool's memory
  std::uint32_t ports = 0;
};

struct OsCosts {
  double page_size = 0, fault_trap = 0, fault_handler = 0, region_lookup = 0, pte_install = 0,
         huge_page_size = 0, huge_map = 0, swap_in_path = 0, syscall = 0, page_cache_insert = 0,
         tlb_shootdown = 0;
};

// Capital costs in US dollars (models/hardware/prices).
struct Prices {
  std::string preset;
  double dram_per_gb = 0, cxl_device = 0, cxl_device_capacity = 0, cxl_pool_port = 0, rdma_nic = 0,
         memory_server = 0, nvme_per_gb = 0, gpu_node = 0, amortization_years = 0;
};

struct Platform {
  std::string preset;
  std::uint32_t memory_servers = 0;
  double server_memory = 0;
  Nic nic;
  Link pcie;
  HostDram dram;
  Gpu gpu;
  Device cxl, nvme;
  CxlPool cxl_pool;
  OsCosts os;
  Prices prices;
};

struct CacheSpec {
  std::uint64_t gpu_experts = 0;
  std::string policy;
  std::string prefetch;             // a prefetcher's name, "none" for no prefetching
  std::uint64_t prefetch_depth = 0;  // resolved: cache.prefetch_depth, or the model's top_k
  std::uint64_t host_experts = 0;    // host-DRAM slots in front of the tier; 0: none
  std::string host_policy;
};

// How a node serves the trace's sequences (docs/architecture.md, "Serving").
struct ServingSpec {
  std::uint32_t batch = 1;        // sequences decoded together per step
  std::uint64_t prompt = 0;       // prompt tokens per synthetic sequence, prefilled before decode
  std::uint64_t context = 0;      // tokens of KV cache each decode token attends to
  std::uint32_t concurrency = 1;  // memory.<tier>.concurrency: switches a node runs at once
};

struct TraceSpec {
  std::optional<std::filesystem::path> file;  // resolved path of a trace file, CSV or binary
  std::uint64_t tokens = 0;                   // synthetic length
  std::uint32_t sequences = 1;                // synthetic sequences, interleaved
  std::uint64_t seed = 0;
  std::filesystem::path generator;            // resolved generator file (traces/generator.hpp)
};

// The emulator's settings (schema::emul); ignored by the simulator.
struct EmulSpec {
  double scale = 1;
  std::string layers;       // as written: "all" or a list such as "0-3,8"
  std::vector<std::uint32_t> layer_list;  // resolved, ascending; empty: all
  std::string granularity;  // auto | page | batch | region
  std::uint64_t batch_pages = 0;
  std::string layout;       // auto | twin | copy
  std::string provider;     // tcp | shm | verbs
  std::optional<std::string> server;  // host:port of a running memd
  std::optional<std::filesystem::path> secret_file;
  double timeout_s = 0;
  std::filesystem::path scratch_dir;
};

struct Experiment {
  std::string name;
  std::string source;  // the YAML file
  std::string mode;
  std::uint64_t seed = 0;
  std::uint32_t nodes = 0;
  MoeModel model;
  Platform platform;
  std::string tier;
  const TierDefinition* tier_definition = nullptr;  // of `tier`, never null after load_experiment
  config::Values tier_params;  // memory.<tier>: the parameters of the selected tier
  CacheSpec cache;
  TraceSpec trace;
  ServingSpec serving;
  EmulSpec emul;
  bool fast_path = true;  // sim.fast_path: transfers no other actor can share are timed in closed form
  // `experts: emulated`: the simulator replays the experts the emulator serves (emul.scale,
  // emul.layers), so that rmai validate compares like with like.
  bool simulate_emulated = false;
  config::Values values;

  // Whether replay visits MoE layer `layer` (all of them unless emul.layers restricts the run).
  bool replays_layer(std::uint32_t layer) const;  // the whole validated tree (for config.resolved.yaml and late errors)
};

// A generator: a preset name (models/synthetic/<name>.yaml) or a GEN.yaml path, looked up beside
// `experiment` (when given), in the current directory, then in the project's home. `where` names the
// key or option for errors.
std::filesystem::path find_generator(const std::string& given, const std::string& where,
                                     const std::filesystem::path& experiment = {});

// Comma-separated indices and inclusive ranges below `layers`, "0-3,8" -> {0,1,2,3,8}, ascending;
// "none" -> {}. Throws InputError naming `where` for anything else or a layer listed twice.
std::vector<std::uint32_t> parse_layer_list(const std::string& text, std::uint32_t moe_layers, const std::string& where);

// Loads, applies `--set` assignments, validates and cross-checks an experiment. Throws InputError.
Experiment load_experiment(const std::filesystem::path& file, const std::vector<std::string>& sets);

// Cross-checks that need several parts (capacity, cache vs model); part of load_experiment.
void check_consistency(const Experiment& experiment);

}  // namespace rmai::spec
