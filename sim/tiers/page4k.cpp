// page4k: classic remote paging (Infiniswap/Fastswap style) from the same memory servers: every
// fault traps, runs the swap-in path (the platform's os.swap_in_path unless the tier sets its own)
// and waits for one RDMA read of fault_around pages, so the reads are strictly one at a time, each
// finding the server idle (nic.wakeup). The pages are then copied to the GPU.
#include "sim/tier.hpp"

namespace rmai::sim {
namespace {

class Page4kTier final : public Tier {
 public:
  explicit Page4kTier(const TierContext& context) : context_(context) {
    const auto& params = context.experiment.tier_params;
    fault_around_ = params.count("fault_around");
    swap_path_ = params.number("swap_path");
  }

  SwitchPlan plan(std::uint32_t node, std::uint32_t expert_key) const override {
    const auto& e = context_.experiment;
    const auto& os = e.platform.os;
    const auto& hosts = context_.cluster.node(node);
    auto* server = server_of(context_.cluster, expert_key);
    const double expert = e.model.expert_bytes();
    const std::uint64_t faults = pieces(expert, double(fault_around_) * os.page_size);
    const double swap_path = swap_path_ > 0 ? swap_path_ : os.swap_in_path;  // 0: the keyword 'os'
    const double per_fault_cpu = os.fault_trap + os.fault_handler + swap_path + e.platform.nic.wakeup +
                                 double(fault_around_) * os.pte_install;

    SwitchPlan plan;
    Chunk c;
    c.cpu_before = double(faults) * per_fault_cpu;
    c.has_fetch = true;
    c.fetch = Transfer::stream(server, hosts.host, expert, faults, 1,
                               rdma_read_cost(e.platform.nic));
    c.cpu_after = e.platform.gpu.copy_launch;
    c.copy = copy_to_gpu(hosts, expert);
    plan.chunks.push_back(c);
    plan.faults = faults;
    plan.transitions = faults;
    plan.cpu_end = os.tlb_shootdown;
    return plan;
  }

 private:
  TierContext context_;
  std::uint64_t fault_around_ = 0;
  double swap_path_ = 0;
};

RMAI_REGISTER(TierRegistry, "page4k", "remote paging: one fault and one RDMA read per 4 KiB page (or fault-around)",
              [](const TierContext& c) { return std::make_unique<Page4kTier>(c); });

}  // namespace
}  // namespace rmai::sim
