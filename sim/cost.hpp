#pragma once
// Where each tier keeps the experts, and what that memory and the node cost (the cost study).
#include "metrics/results.hpp"
#include "spec/experiment.hpp"

namespace rmai::sim {

enum class Medium {
  HostDram,    // dram: a private copy in each node's host DRAM
  CxlDevices,  // cxl: a private copy on each node's CXL expanders
  RemotePool,  // rmai, page4k: one copy in the memory servers' DRAM, shared by the nodes
  Nvme,        // disk-mmap, disk-read: a private copy on each node's NVMe drive
};
Medium medium_of(const std::string& tier);

// Capital cost per node from platform.prices: the node, plus the memory holding one copy of the
// experts (for the pool: each node's NIC plus its share of the servers, their NICs and DRAM), and
// dollars per million tokens written off over `amortization_years` at the node's tokens/s.
metrics::Cost capital_cost(const spec::Experiment& e, double tokens_per_s_per_node);

}  // namespace rmai::sim
