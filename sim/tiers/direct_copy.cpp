// dram and cxl: the experts live in memory the GPU's copy engine can read directly, so a switch
// takes no page fault: one copy launch and one copy to the GPU.
//   dram: the node's own host DRAM (pinned), through PCIe: the upper bound for every other tier.
//   cxl:  a CXL-like memory expander mapped as ordinary memory, through its link and then PCIe.
#include "sim/tier.hpp"

namespace rmai::sim {
namespace {

class DirectCopyTier final : public Tier {
 public:
  DirectCopyTier(const TierContext& context, bool from_cxl) : context_(context), from_cxl_(from_cxl) {}

  SwitchPlan plan(std::uint32_t node, std::uint32_t /*expert_key*/) const override {
    const auto& hosts = context_.cluster.node(node);
    const auto& e = context_.experiment;
    return copy_plan(from_cxl_ ? hosts.cxl : hosts.host, hosts.gpu, e.model.expert_bytes(), e.platform.gpu.copy_launch);
  }

 private:
  TierContext context_;
  bool from_cxl_;
};

RMAI_REGISTER(TierRegistry, "dram", "host DRAM: one PCIe copy per switch (upper bound)",
              [](const TierContext& c) { return std::make_unique<DirectCopyTier>(c, false); });
RMAI_REGISTER(TierRegistry, "cxl", "CXL-like expander: copy to the GPU without faults",
              [](const TierContext& c) { return std::make_unique<DirectCopyTier>(c, true); });

}  // namespace
}  // namespace rmai::sim
