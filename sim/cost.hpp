#pragma once
// What the memory holding the experts (by the tier's medium, spec/tiers.hpp) and the node cost: the
// cost study.
#include "metrics/results.hpp"
#include "spec/experiment.hpp"

namespace rmai::sim {

// Capital cost per node from platform.prices: the node, plus the memory holding one copy of the
// experts (for the pool: each node's NIC plus its share of the servers, their NICs and DRAM), and
// dollars per million tokens written off over `amortization_years` at the node's tokens/s.
// The host-DRAM cache (cache.host_experts) is memory of each node's own, priced as DRAM.
metrics::Cost capital_cost(const spec::Experiment& e, double tokens_per_s_per_node);

// Bytes of one node's host-DRAM expert cache.
double host_cache_bytes(const spec::Experiment& e);

}  // namespace rmai::sim
