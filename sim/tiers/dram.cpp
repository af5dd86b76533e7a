// dram: the experts live in the node's own host DRAM (pinned); a switch is one PCIe copy.
// The upper bound every other tier is compared with.
#include "tier.hpp"

namespace rmai::sim {
namespace {

class DramTier final : public Tier {
 public:
  explicit DramTier(const TierContext& context) : context_(context) {}

  SwitchPlan plan(std::uint32_t node, std::uint32_t /*expert_key*/) const override {
    const auto& hosts = context_.cluster.node(node);
    const double bytes = context_.experiment.model.expert_bytes();
    SwitchPlan plan;
    Chunk chunk;
    chunk.cpu_before = context_.experiment.platform.gpu.copy_launch;
    chunk.copy = Transfer::copy(hosts.host, hosts.gpu, bytes);
    plan.chunks.push_back(chunk);
    plan.bytes.pcie = bytes;
    return plan;
  }

 private:
  TierContext context_;
};

RMAI_REGISTER(TierRegistry, "dram", "host DRAM: one PCIe copy per switch (upper bound)",
              [](const TierContext& c) { return std::make_unique<DramTier>(c); });

}  // namespace
}  // namespace rmai::sim
