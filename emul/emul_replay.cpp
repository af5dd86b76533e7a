#include "emul/emul_replay.hpp"

#include <chrono>
#include <memory>

#include "config/errors.hpp"
#include "cache/expert_cache.hpp"
#include "cache/prefetcher.hpp"
#include "cache/replay.hpp"

namespace rmai::emul {
namespace {

// The emulator's executor of the shared replay loop (cache/replay.hpp): a switch loads the expert
// through the store on the wall clock; the GPU's compute is not emulated.
class StoreExecutor final : public cache::ReplayExecutor {
 public:
  StoreExecutor(const Catalog& catalog, ExpertStore& store, std::uint32_t experts, std::span<std::byte> device,
                std::vector<metrics::SwitchRecord>& switches)
      : catalog_(catalog), store_(store), experts_(experts), device_(device), switches_(switches) {}

  double now() override { return seconds_since(start_); }
  void compute(double /*seconds*/) override {}
  void evicted(cache::ExpertKey key) override {
    store_.evict(*catalog_.find(cache::layer_of(key, experts_), cache::expert_of(key, experts_)));
  }
  void switch_in(const cache::Access& a) override {
    const std::uint32_t object = *catalog_.find(a.layer, a.expert);
    const auto faults_before = store_.faults();
    const double start = now();
    store_.load(object, device_);
    switches_.push_back({0, a.token, a.layer, a.expert, start, now(), double(catalog_.object_bytes()),
                         store_.faults() - faults_before});
  }

 private:
  const Catalog& catalog_;
  ExpertStore& store_;
  std::uint32_t experts_;
  std::span<std::byte> device_;
  std::vector<metrics::SwitchRecord>& switches_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace

metrics::RunResult replay(const spec::Experiment& e, const traces::RoutingTrace& trace, const Catalog& catalog,
                          ExpertStore& store, const cache::ReplayProgress& progress) {
  const auto& model = e.model;
  if (e.cache.prefetch != cache::kNoPrefetch)
    throw InputError(e.values.child("cache").where("prefetch"), "the emulator has no prefetcher yet: use 'none' with mode: emul");
  if (e.serving.concurrency != 1)
    throw InputError(e.tier_params.where("concurrency"), "the emulator runs one faulting thread yet: use 1 with mode: emul");
  if (e.cache.host_experts != 0)
    throw InputError(e.values.child("cache").where("host_experts"), "the emulator has no host cache yet: use 0 with mode: emul");
  if (e.nodes != 1)
    throw InputError(e.values.where("nodes"), "the emulator runs one node per process: for sharing, run several 'rmai run --mode emul' "
                              "against one memd (emul.server)");
  cache::ExpertCache cache(e.cache.gpu_experts, model.routed_experts_total(),
                           cache::PolicyRegistry::instance().make(e.cache.policy, model.routed_experts_total()));
  // The stand-in for the GPU's HBM slot the expert is copied into, reused by every switch since
  // nothing reads it afterwards; touched when made, since an HBM slot takes no page faults.
  const PageBuffer device = touched_page_buffer(catalog.object_bytes());

  metrics::RunResult r;
  r.mode = "emul";
  r.model = model.name;
  r.tier = e.tier;
  r.policy = e.cache.policy;
  r.prefetch = e.cache.prefetch;
  r.nodes = 1;
  r.gpu_experts = e.cache.gpu_experts;
  r.pool_bytes = double(catalog.total_bytes());
  r.serving = cache::serving_settings(e);
  StoreExecutor exec(catalog, store, model.experts, {device.get(), catalog.object_bytes()}, r.switches);
  const std::vector<std::uint32_t> order = cache::sequence_order(trace);
  cache::ReplayPlan plan = cache::replay_plan(e, 0);
  plan.order = &order;
  plan.progress = progress;
  cache::add_tally(cache::replay(trace, plan, cache, exec), r);
  r.simulated_time_s = exec.now();  // measured, not simulated: the replay's wall time
  const Counters c = store.counters();
  r.page_faults = c.faults;
  r.user_kernel_transitions = c.transitions;
  // Bytes from the backing tier, and the copies to the device buffer (the PCIe copy's stand-in).
  if (double* medium = r.bytes.from(e.tier_definition->medium_info().bytes)) *medium = double(c.bytes_fetched);
  r.bytes.pcie = double(r.switches.size()) * double(catalog.object_bytes());
  metrics::EmulInfo info;
  info.scale = catalog.spec().scale;
  info.object_bytes = catalog.object_bytes();
  info.objects = catalog.objects().size();
  info.fault_latency_s = metrics::summarize(c.fault_latency_s);
  info.handler_system_calls = c.handler_calls;
  r.emul = info;
  return r;
}

}  // namespace rmai::emul
