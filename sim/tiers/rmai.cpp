// rmai: the experts live in memory donated by memory servers and are mapped as RMAI dynamic
// virtual memory regions. One fault brings in a whole region chunk (by default the whole expert):
// one trap, one region lookup, then the chunk moves with batched one-sided RDMA reads
// (fault_batch pages per read, queue_depth reads in flight; the first finds the server idle:
// nic.wakeup), it is mapped with map_page pages (PTEs, or PMDs for huge pages), and the chunk is
// copied to the GPU while the next chunk faults. The region is torn down after the last copy.
#include "sim/tier.hpp"

namespace rmai::sim {
namespace {

class RmaiTier final : public Tier {
 public:
  explicit RmaiTier(const TierContext& context) : context_(context) {
    const auto& params = context.experiment.tier_params;
    region_chunk_ = params.number("region_chunk");  // 0: the whole expert
    fault_batch_ = params.count("fault_batch");
    queue_depth_ = params.count("queue_depth");
    map_page_ = params.number("map_page");  // the OS's page or huge page (spec/experiment.cpp checks)
  }

  SwitchPlan plan(std::uint32_t node, std::uint32_t expert_key) const override {
    const auto& e = context_.experiment;
    const auto& os = e.platform.os;
    const auto& hosts = context_.cluster.node(node);
    auto* server = server_of(context_.cluster, expert_key);
    const double expert = e.model.expert_bytes();
    const double chunk = region_chunk_ > 0 ? std::min(region_chunk_, expert) : expert;
    const double read_bytes = double(fault_batch_) * os.page_size;
    const double map_cost = map_page_ == os.huge_page_size ? os.huge_map : os.pte_install;

    SwitchPlan plan;
    for (double done = 0; done < expert; done += chunk) {
      const double bytes = std::min(chunk, expert - done);
      Chunk c;
      c.cpu_before = os.fault_trap + os.fault_handler + os.region_lookup + e.platform.nic.wakeup;
      c.has_fetch = true;
      c.fetch = Transfer::stream(server, hosts.host, bytes, pieces(bytes, read_bytes), queue_depth_, rdma_read_cost(e.platform.nic));
      c.cpu_after = double(pieces(bytes, map_page_)) * map_cost + e.platform.gpu.copy_launch;
      c.copy = copy_to_gpu(hosts, bytes);
      plan.chunks.push_back(c);
      ++plan.faults;
    }
    plan.transitions = plan.faults;  // one trap per region fault; the rest happens in the kernel
    plan.cpu_end = os.tlb_shootdown;
    return plan;
  }

 private:
  TierContext context_;
  double region_chunk_ = 0;
  std::uint64_t fault_batch_ = 0;
  std::uint64_t queue_depth_ = 0;
  double map_page_ = 0;
};

RMAI_REGISTER(TierRegistry, "rmai", "RMAI dynamic regions: one fault per region chunk, batched RDMA reads",
              [](const TierContext& c) { return std::make_unique<RmaiTier>(c); });

}  // namespace
}  // namespace rmai::sim
