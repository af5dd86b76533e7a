// disk-read: the expert file is read from the node's NVMe drive with read() calls of read_chunk
// bytes (O_DIRECT into a pinned buffer, queue_depth in flight, one system call per round), then
// copied to the GPU. No page faults.
#include "sim/tier.hpp"

namespace rmai::sim {
namespace {

class DiskReadTier final : public Tier {
 public:
  explicit DiskReadTier(const TierContext& context) : context_(context) {
    const auto& params = context.experiment.tier_params;
    read_chunk_ = params.number("read_chunk");
    queue_depth_ = params.count("queue_depth");
  }

  SwitchPlan plan(std::uint32_t node, std::uint32_t /*expert_key*/) const override {
    const auto& e = context_.experiment;
    const auto& hosts = context_.cluster.node(node);
    const double expert = e.model.expert_bytes();
    const std::uint64_t reads = pieces(expert, read_chunk_);
    const std::uint64_t rounds = ceil_div(reads, queue_depth_);

    SwitchPlan plan;
    Chunk c;
    c.cpu_before = double(rounds) * e.platform.os.syscall;
    c.has_fetch = true;
    c.fetch = Transfer::stream(hosts.nvme, hosts.host, expert, reads, queue_depth_, e.platform.nvme.latency);
    c.cpu_after = e.platform.gpu.copy_launch;
    c.copy = copy_to_gpu(hosts, expert);
    plan.chunks.push_back(c);
    plan.transitions = rounds;
    return plan;
  }

 private:
  TierContext context_;
  double read_chunk_ = 0;
  std::uint64_t queue_depth_ = 0;
};

RMAI_REGISTER(TierRegistry, "disk-read", "NVMe file read with read() into a buffer, then a PCIe copy",
              [](const TierContext& c) { return std::make_unique<DiskReadTier>(c); });

}  // namespace
}  // namespace rmai::sim
