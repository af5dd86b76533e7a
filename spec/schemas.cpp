#include "spec/schemas.hpp"

#include "spec/tiers.hpp"

#include <map>
#include <stdexcept>

namespace rmai::spec {
using config::Bound;
using config::Kind;
using config::Param;
using config::Schema;

namespace schema {
namespace {

Param required(std::string name, Kind kind, std::string description, Bound bound = Bound::Positive) {
  Param p;
  p.name = std::move(name);
  p.kind = kind;
  p.description = std::move(description);
  p.bound = bound;
  return p;
}

Param optional(std::string name, Kind kind, std::string description, std::string fallback = "",
               Bound bound = Bound::Positive) {
  Param p = required(std::move(name), kind, std::move(description), bound);
  p.fallback = std::move(fallback);
  p.required = false;
  return p;
}

Param choice(std::string name, std::string description, std::vector<std::string> choices,
             std::string fallback) {
  Param p = optional(std::move(name), Kind::Text, std::move(description), std::move(fallback));
  p.choices = std::move(choices);
  return p;
}

Param component(std::string name, const Schema& schema, std::string preset_dir, std::string fallback = "") {
  Param p;
  p.name = std::move(name);
  p.kind = Kind::Component;
  p.description = schema.description;
  p.schema = &schema;
  p.preset_dir = std::move(preset_dir);
  p.fallback = std::move(fallback);
  return p;
}

// What one transfer gets of a link at most, where something other than the link bounds it: on the
// emulator's platform a copy or a load stream is one CPU thread's, so `bandwidth` is what all the
// cores move together and `flow_bandwidth` what one moves (rmai calibrate measures both).
Param flow_bandwidth() {
  return optional("flow_bandwidth", Kind::Bandwidth,
                  "the most one transfer gets of the bandwidth (one thread's copy or load stream); 0: no cap, one "
                  "transfer can take it all", "0GBps", Bound::NonNegative);
}

Param at_most(Param p, double max) {
  p.max = max;
  return p;
}

Param text(std::string name, std::string description) {
  return optional(std::move(name), Kind::Text, std::move(description));
}

}  // namespace

const Schema& nic() {
  static const Schema s{"nic", "RDMA NIC of inference nodes and memory servers (models/hardware/nic)", {
      text("description", "what this preset is"),
      required("bandwidth", Kind::Bandwidth, "line rate of one port"),
      required("latency", Kind::Time, "one-way latency NIC to NIC through the switch", Bound::NonNegative),
      required("op_overhead", Kind::Time, "per RDMA operation: post, doorbell, completion polling", Bound::NonNegative),
      required("wakeup", Kind::Time,
               "server-side wake-up before a read that finds the connection idle (a software transport's progress "
               "thread; 0 for one-sided RDMA served by the NIC)", Bound::NonNegative),
  }};
  return s;
}

const Schema& pcie() {
  static const Schema s{"pcie", "host-to-GPU PCIe link (models/hardware/pcie)", {
      text("description", "what this preset is"),
      required("bandwidth", Kind::Bandwidth, "achieved host-to-device copy bandwidth"),
      flow_bandwidth(),
      required("latency", Kind::Time, "one-way DMA latency", Bound::NonNegative),
  }};
  return s;
}

const Schema& gpu() {
  static const Schema s{"gpu", "GPU with an HBM expert cache (models/hardware/gpu)", {
      text("description", "what this preset is"),
      required("hbm_capacity", Kind::Bytes, "HBM size: dense weights plus expert slots must fit"),
      required("hbm_bandwidth", Kind::Bandwidth, "peak HBM bandwidth"),
      required("flops", Kind::Number, "peak dense bf16 FLOP/s"),
      required("memory_efficiency", Kind::Ratio, "achieved fraction of peak HBM bandwidth in decode"),
      required("compute_efficiency", Kind::Ratio, "achieved fraction of peak FLOP/s in decode"),
      required("copy_launch", Kind::Time, "overhead to issue one host-to-device copy", Bound::NonNegative),
  }};
  return s;
}

const Schema& dram() {
  static const Schema s{"dram", "host DRAM of an inference node (models/hardware/dram)", {
      text("description", "what this preset is"),
      required("bandwidth", Kind::Bandwidth, "sustained bandwidth of the host memory"),
      flow_bandwidth(),
      required("latency", Kind::Time, "load latency", Bound::NonNegative),
      required("capacity", Kind::Bytes, "host memory of one inference node (bounds cache.host_experts)"),
  }};
  return s;
}

const Schema& cxl() {
  static const Schema s{"cxl", "CXL-like memory expander (models/hardware/cxl)", {
      text("description", "what this preset is"),
      required("bandwidth", Kind::Bandwidth, "sustained read bandwidth of the expander"),
      required("latency", Kind::Time, "load latency", Bound::NonNegative),
      required("capacity", Kind::Bytes, "memory on the expander: the experts must fit"),
  }};
  return s;
}

const Schema& cxl_pool() {
  static const Schema s{"cxl_pool", "CXL memory pool shared by the nodes through a switch (models/hardware/cxl-pool)", {
      text("description", "what this preset is"),
      required("bandwidth", Kind::Bandwidth, "sustained read bandwidth of one pool port"),
      required("latency", Kind::Time, "load latency", Bound::NonNegative),
      at_most(required("ports", Kind::Count, "pool ports the nodes share (an expert is read through port key mod ports)"),
              kMaxPoolPorts),
      required("capacity", Kind::Bytes, "memory in the pool: the experts must fit"),
  }};
  return s;
}

const Schema& nvme() {
  static const Schema s{"nvme", "NVMe SSD (models/hardware/nvme)", {
      text("description", "what this preset is"),
      required("read_bandwidth", Kind::Bandwidth, "sequential read bandwidth"),
      required("read_latency", Kind::Time, "latency of one read at queue depth 1"),
      required("capacity", Kind::Bytes, "drive size: the experts must fit"),
  }};
  return s;
}

const Schema& os() {
  static const Schema s{"os", "kernel costs on the paging paths (models/hardware/os)", {
      text("description", "what this preset is"),
      required("page_size", Kind::Bytes, "base page size"),
      required("fault_trap", Kind::Time, "exception entry and return to user for one page fault"),
      required("fault_handler", Kind::Time, "generic fault handling work (VMA walk, locks)", Bound::NonNegative),
      required("region_lookup", Kind::Time, "find the dynamic region (RMAI) of a faulting address", Bound::NonNegative),
      required("pte_install", Kind::Time, "install one page table entry", Bound::NonNegative),
      required("huge_page_size", Kind::Bytes, "huge page size (one PMD entry maps it)"),
      required("huge_map", Kind::Time, "take a fresh huge page frame, map it and make it usable at its first access",
               Bound::NonNegative),
      required("swap_in_path", Kind::Time,
               "software of one remote swap-in fault beyond trap and handler: the kernel's swap path, or a user-space "
               "fault handler's wake-up chain", Bound::NonNegative),
      required("syscall", Kind::Time, "system call entry and return"),
      required("page_cache_insert", Kind::Time, "add one page read from disk to the page cache", Bound::NonNegative),
      required("tlb_shootdown", Kind::Time, "unmap an evicted expert's range and flush TLBs", Bound::NonNegative),
  }};
  return s;
}

const Schema& prices() {
  static const Schema s{"prices", "capital costs in US dollars for the cost study (models/hardware/prices)", {
      text("description", "what this preset is"),
      required("dram_per_gb", Kind::Number, "host or memory-server DRAM, dollars per GB", Bound::NonNegative),
      required("cxl_device", Kind::Number, "one CXL expander without its DRAM, dollars", Bound::NonNegative),
      required("cxl_device_capacity", Kind::Bytes, "DRAM one CXL expander holds"),
      required("rdma_nic", Kind::Number, "one RDMA NIC, dollars", Bound::NonNegative),
      required("memory_server", Kind::Number, "one memory server without its DRAM and NIC, dollars", Bound::NonNegative),
      required("cxl_pool_port", Kind::Number, "a node's CXL switch port and cable to a shared pool, dollars",
               Bound::NonNegative),
      required("nvme_per_gb", Kind::Number, "NVMe flash, dollars per GB", Bound::NonNegative),
      required("gpu_node", Kind::Number, "one inference node (GPU and host) without expert memory, dollars", Bound::NonNegative),
      required("amortization_years", Kind::Number, "years over which the hardware is written off"),
  }};
  return s;
}

const Schema& platform() {
  static const Schema s{"platform", "a cluster: inference nodes, memory servers and devices (models/platforms)", {
      text("description", "what this platform is"),
      required("memory_servers", Kind::Count, "memory servers that donate memory to the pool"),
      required("server_memory", Kind::Bytes, "memory each server donates"),
      component("nic", nic(), "hardware/nic"),
      component("pcie", pcie(), "hardware/pcie"),
      component("gpu", gpu(), "hardware/gpu"),
      component("dram", dram(), "hardware/dram"),
      component("cxl", cxl(), "hardware/cxl"),
      component("cxl_pool", cxl_pool(), "hardware/cxl-pool", "pond-4port"),
      component("nvme", nvme(), "hardware/nvme"),
      component("os", os(), "hardware/os"),
      component("prices", prices(), "hardware/prices", "default"),
  }};
  return s;
}

const Schema& moe_model() {
  static const Schema s{"model", "an MoE architecture from its config.json (models/moe)", {
      text("description", "the model and its source"),
      required("layers", Kind::Count, "transformer layers"),
      required("moe_layers", Kind::Count, "layers whose FFN is a mixture of experts"),
      optional("dense_layers", Kind::Text, "the layers with a dense FFN, as indices and ranges (\"0-2\", \"0,2,4\")", "none"),
      required("experts", Kind::Count, "routed experts per MoE layer"),
      optional("shared_experts", Kind::Count, "always-active experts per MoE layer (kept in HBM)", "0", Bound::NonNegative),
      required("top_k", Kind::Count, "routed experts chosen per token and layer"),
      required("hidden_size", Kind::Count, "model dimension"),
      required("expert_ffn_size", Kind::Count, "intermediate size of one expert"),
      required("expert_matrices", Kind::Count, "weight matrices per expert (3 for SwiGLU, 2 for a plain FFN)"),
      choice("dtype", "weight type", {"bf16", "fp16", "fp8", "mxfp4"}, "bf16"),
      required("attention_heads", Kind::Count, "query heads"),
      required("kv_heads", Kind::Count, "key/value heads"),
      required("head_dim", Kind::Count, "dimension of one head"),
      optional("attention_params", Kind::Number, "parameters of one attention block when not plain GQA (e.g. MLA)"),
      optional("dense_ffn_size", Kind::Count, "intermediate size of the dense layers' FFN", "0", Bound::NonNegative),
      optional("kv_cache_values", Kind::Count,
               "values the KV cache holds per token and layer when not plain GQA (e.g. MLA's latent); absent: 2 x kv_heads x head_dim"),
      choice("kv_dtype", "KV cache element type", {"bf16", "fp16", "fp8"}, "bf16"),
  }};
  return s;
}

const Schema& memory() {
  static const Schema s = [] {
    Schema m{"memory", "where expert weights live and the paging path that brings them in", {}};
    m.params.push_back(choice("tier", "the memory tier of expert switches", tier_names(), default_tier().name));
    for (const auto& t : tiers()) {
      Param p = component(t.name, t.schema, "tiers", t.name);
      p.definition_key = kTierDefinitionKey;
      m.params.push_back(p);
    }
    return m;
  }();
  return s;
}

const Schema& cache() {
  static const Schema s{"cache", "the GPU expert cache of each inference node", {
      required("gpu_experts", Kind::Count, "expert slots in each GPU's HBM"),
      optional("policy", Kind::Text, "replacement policy (see rmai list)", "lru"),
      optional("prefetch", Kind::Text, "expert prefetcher (see rmai list)", "none"),
      optional("prefetch_depth", Kind::Count,
               "experts of the next layer prefetched per layer; 0 or absent: the model's top_k", "", Bound::NonNegative),
      optional("host_experts", Kind::Count,
               "expert slots in each node's host DRAM in front of the tier (0: none, every GPU miss goes to the tier)", "0",
               Bound::NonNegative),
      optional("host_policy", Kind::Text, "replacement policy of the host cache (see rmai list)", "lru"),
  }};
  return s;
}

const Schema& trace() {
  static const Schema s{"trace", "the routing trace replayed by every node", {
      text("file", "routing trace, canonical CSV or binary .rmtrace; when absent a synthetic trace is generated"),
      optional("tokens", Kind::Count, "length of the synthetic trace", "256"),
      optional("sequences", Kind::Count, "independent sequences of the synthetic trace (serving.batch decodes them together)", "1"),
      optional("seed", Kind::Integer, "seed of the synthetic trace (default: the experiment's seed)", "", Bound::NonNegative),
      optional("generator", Kind::Text, "synthetic routing: a generator in models/synthetic or a GEN.yaml file", "default"),
  }};
  return s;
}

const Schema& serving() {
  static const Schema s{"serving", "how each node serves the trace's sequences (docs/architecture.md, \"Serving\")", {
      at_most(optional("batch", Kind::Count, "sequences decoded together in one step (continuous batching)", "1"), kMaxBatch),
      at_most(optional("prompt", Kind::Count,
                       "prompt tokens per sequence of a synthetic trace, prefilled in one step before decode", "0",
                       Bound::NonNegative),
              kMaxPrompt),
      at_most(optional("context", Kind::Count, "tokens of KV cache each decode token attends to", "0", Bound::NonNegative),
              kMaxContext),
  }};
  return s;
}

const Schema& sim() {
  static const Schema s{"sim", "the simulator (mode: sim)", {
      choice("fast_path",
             "time transfers no other actor can share in closed form instead of as SimGrid comms (same results to "
             "1e-9; false: every transfer is a SimGrid comm)",
             {"true", "false"}, "true"),
  }};
  return s;
}

const Schema& emul() {
  static const Schema s{"emul", "the emulator (mode: emul): the real region code on this machine", {
      optional("scale", Kind::Number,
               "fraction of each expert's bytes served (0 < scale <= 1), so the experts fit this machine", "0.015625"),
      optional("layers", Kind::Text, "MoE layers replayed and served, e.g. '0-3,8'; 'all' for every layer", "all"),
      choice("granularity", "bytes served per fault: auto (rmai: region, page4k: page), page (4 KiB), batch, region",
             {"auto", "page", "batch", "region"}, "auto"),
      optional("batch_pages", Kind::Count, "4 KiB pages served per fault at granularity batch", "64"),
      choice("layout", "how faults are served: auto (twin on huge pages when rmai's map_page is 2 MiB, else copy), "
             "twin (memfd mapped twice, UFFDIO_CONTINUE), "
             "copy (anonymous memory, UFFDIO_COPY)", {"auto", "twin", "copy"}, "auto"),
      choice("provider", "libfabric provider of the RMA reads", {"tcp", "shm", "verbs"}, "tcp"),
      text("server", "host:port of a running rmai memd; absent: rmai run starts one on loopback"),
      text("secret_file", "file holding the memd shared secret; absent: a fresh secret for the memd rmai run starts"),
      optional("timeout", Kind::Time, "a read not completed in this time fails the run", "2s"),
      text("scratch_dir", "directory for the disk tiers' expert file (a real disk, not tmpfs); absent: /var/tmp"),
  }};
  return s;
}

const Schema& experiment() {
  static const Schema s{"experiment", "one run: a model on a platform with a memory tier and a trace", {
      text("name", "experiment name (default: the file name)"),
      choice("mode", "sim (SimGrid model) or emul (real region code)", {"sim", "emul"}, "sim"),
      required("model", Kind::Text, "MoE model, a name in models/moe"),
      component("platform", platform(), "platforms", "default"),
      at_most(optional("nodes", Kind::Count, "inference nodes sharing the memory pool", "1"), kMaxNodes),
      optional("seed", Kind::Integer, "seed of everything random", "1", Bound::NonNegative),
      component("memory", memory(), ""),
      component("cache", cache(), ""),
      component("trace", trace(), ""),
      component("serving", serving(), ""),
      component("sim", sim(), ""),
      component("emul", emul(), ""),
      choice("experts", "experts the simulator replays: full, or emulated (scaled and restricted as emul.scale and "
             "emul.layers say, as rmai validate compares)", {"full", "emulated"}, "full"),
  }};
  return s;
}

std::vector<const Schema*> all() {
  std::vector<const Schema*> out{&experiment(), &memory(), &cache(), &trace(), &serving(), &sim(), &emul(),
                                 &platform(), &nic(), &pcie(), &gpu(), &dram(), &cxl(), &cxl_pool(), &nvme(), &os(),
                                 &prices(), &moe_model()};
  for (const auto& t : tiers()) out.push_back(&t.schema);
  return out;
}

}  // namespace schema
}  // namespace rmai::spec
