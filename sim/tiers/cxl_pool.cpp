// cxl-pool: the experts live once in a CXL memory pool that every node reaches through a CXL switch
// (Pond-like). As for a CXL expander, the GPU's copy engine reads the pool directly, so a switch
// takes no page fault: one copy launch and one copy, from the pool port holding the expert (experts
// are interleaved over the ports by key) through the node's switch port and PCIe. Nodes reading
// through the same pool port share its bandwidth, as they share a memory server's NIC.
#include "sim/tier.hpp"

namespace rmai::sim {
namespace {

class CxlPoolTier final : public Tier {
 public:
  explicit CxlPoolTier(const TierContext& context) : context_(context) {}

  SwitchPlan plan(std::uint32_t node, std::uint32_t expert_key) const override {
    const auto& cluster = context_.cluster;
    const double bytes = context_.experiment.model.expert_bytes();
    SwitchPlan plan;
    Chunk chunk;
    chunk.cpu_before = context_.experiment.platform.gpu.copy_launch;
    chunk.copy = Transfer::copy(cluster.pool_port(expert_key % cluster.pool_ports()), cluster.node(node).gpu, bytes);
    plan.chunks.push_back(chunk);
    return plan;
  }

 private:
  TierContext context_;
};

RMAI_REGISTER(TierRegistry, "cxl-pool", "CXL pool behind a switch: copy to the GPU without faults, pool ports shared",
              [](const TierContext& c) { return std::make_unique<CxlPoolTier>(c); });

}  // namespace
}  // namespace rmai::sim
