// cxl: the experts live in a CXL-like memory expander mapped as ordinary (load/store) memory, so a
// switch takes no page fault: the GPU's copy engine reads the expander directly, through its link
// and then PCIe.
#include "tier.hpp"

namespace rmai::sim {
namespace {

class CxlTier final : public Tier {
 public:
  explicit CxlTier(const TierContext& context) : context_(context) {}

  SwitchPlan plan(std::uint32_t node, std::uint32_t /*expert_key*/) const override {
    const auto& hosts = context_.cluster.node(node);
    const double bytes = context_.experiment.model.expert_bytes();
    SwitchPlan plan;
    Chunk chunk;
    chunk.cpu_before = context_.experiment.platform.gpu.copy_launch;
    chunk.copy = Transfer::copy(hosts.cxl, hosts.gpu, bytes);
    plan.chunks.push_back(chunk);
    plan.bytes.cxl = bytes;
    plan.bytes.pcie = bytes;
    return plan;
  }

 private:
  TierContext context_;
};

RMAI_REGISTER(TierRegistry, "cxl", "CXL-like expander: copy to the GPU without faults",
              [](const TierContext& c) { return std::make_unique<CxlTier>(c); });

}  // namespace
}  // namespace rmai::sim
