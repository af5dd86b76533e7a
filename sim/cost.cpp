#include "sim/cost.hpp"

#include <cmath>

namespace rmai::sim {

double host_cache_bytes(const spec::Experiment& e) { return double(e.cache.host_experts) * e.model.expert_bytes(); }

metrics::Cost capital_cost(const spec::Experiment& e, double tokens_per_s_per_node) {
  const auto& p = e.platform.prices;
  const double bytes = double(e.model.routed_experts_total()) * e.model.expert_bytes();
  const double gigabytes = bytes / 1e9;
  double memory = 0;
  switch (e.tier_definition->medium) {
    case spec::Medium::HostDram:
      memory = gigabytes * p.dram_per_gb;
      break;
    case spec::Medium::CxlDevices:
      memory = std::ceil(bytes / p.cxl_device_capacity) * p.cxl_device + gigabytes * p.dram_per_gb;
      break;
    case spec::Medium::CxlPool:  // one copy on the pool's devices, shared; each node pays its switch port
      memory = p.cxl_pool_port +
               (std::ceil(bytes / p.cxl_device_capacity) * p.cxl_device + gigabytes * p.dram_per_gb) / e.nodes;
      break;
    case spec::Medium::RemotePool: {
      const double servers = e.platform.memory_servers * (p.memory_server + p.rdma_nic);
      memory = p.rdma_nic + (servers + gigabytes * p.dram_per_gb) / e.nodes;
      break;
    }
    case spec::Medium::Nvme:
      memory = gigabytes * p.nvme_per_gb;
      break;
  }
  memory += host_cache_bytes(e) / 1e9 * p.dram_per_gb;
  metrics::Cost cost{p.preset, p.gpu_node, memory, 0};
  const double seconds = p.amortization_years * 365.25 * 86400;
  if (tokens_per_s_per_node > 0)
    cost.usd_per_million_tokens = (cost.node_usd + memory) / seconds / tokens_per_s_per_node * 1e6;
  return cost;
}

}  // namespace rmai::sim
