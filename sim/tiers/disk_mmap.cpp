// disk-mmap: the expert file on the node's NVMe drive is mapped with mmap and touched in order.
// Each major fault reads one readahead window synchronously (queue_depth windows in flight) and
// inserts its pages into the page cache; the other pages of the window are mapped by minor
// faults, fault_around bytes at a time. The mapping is dropped after the copy (no page cache
// reuse: the host keeps no second-level expert cache).
#include "sim/tier.hpp"

namespace rmai::sim {
namespace {

class DiskMmapTier final : public Tier {
 public:
  explicit DiskMmapTier(const TierContext& context) : context_(context) {
    const auto& params = context.experiment.tier_params;
    readahead_ = params.number("readahead");
    fault_around_ = params.number("fault_around");
    queue_depth_ = params.count("queue_depth");
  }

  SwitchPlan plan(std::uint32_t node, std::uint32_t /*expert_key*/) const override {
    const auto& e = context_.experiment;
    const auto& os = e.platform.os;
    const auto& hosts = context_.cluster.node(node);
    const double expert = e.model.expert_bytes();
    const std::uint64_t major = pieces(expert, readahead_);
    const std::uint64_t mappings = pieces(expert, fault_around_);
    const std::uint64_t minor = mappings > major ? mappings - major : 0;
    const double fault = os.fault_trap + os.fault_handler;
    const double map_cost = double(pieces(fault_around_, os.page_size)) * os.pte_install;
    const double insert_cost = double(pieces(readahead_, os.page_size)) * os.page_cache_insert;

    SwitchPlan plan;
    Chunk c;
    c.cpu_before = double(major) * (fault + insert_cost + map_cost) + double(minor) * (fault + map_cost);
    c.has_fetch = true;
    c.fetch = Transfer::stream(hosts.nvme, hosts.host, expert, major, queue_depth_, e.platform.nvme.latency);
    c.cpu_after = e.platform.gpu.copy_launch;
    c.copy = copy_to_gpu(hosts, expert);
    plan.chunks.push_back(c);
    plan.faults = major + minor;
    plan.transitions = plan.faults;
    plan.cpu_end = os.tlb_shootdown;
    return plan;
  }

 private:
  TierContext context_;
  double readahead_ = 0;
  double fault_around_ = 0;
  std::uint64_t queue_depth_ = 0;
};

RMAI_REGISTER(TierRegistry, "disk-mmap", "NVMe file mapped with mmap: major faults with readahead, minor faults",
              [](const TierContext& c) { return std::make_unique<DiskMmapTier>(c); });

}  // namespace
}  // namespace rmai::sim
