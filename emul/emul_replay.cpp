#include "emul/emul_replay.hpp"

#include <chrono>
#include <cstdlib>
#include <memory>

#include "config/errors.hpp"
#include "cache/expert_cache.hpp"
#include "cache/prefetcher.hpp"

namespace rmai::emul {
namespace {

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};

}  // namespace

metrics::RunResult replay(const spec::Experiment& e, const traces::RoutingTrace& trace, const Catalog& catalog,
                          ExpertStore& store) {
  const auto& model = e.model;
  if (e.cache.prefetch != cache::kNoPrefetch)
    throw InputError("cache.prefetch", "the emulator has no prefetcher yet: use 'none' with mode: emul");
  if (e.nodes != 1)
    throw InputError("nodes", "the emulator runs one node per process: for sharing, run several 'rmai run --mode emul' "
                              "against one memd (emul.server)");
  cache::ExpertCache cache(e.cache.gpu_experts, model.routed_experts_total(),
                           cache::PolicyRegistry::instance().make(e.cache.policy, model.routed_experts_total()));
  // The stand-in for the GPU's HBM slot the expert is copied into: one page-aligned buffer (O_DIRECT
  // reads land in it directly), reused by every switch since nothing reads it afterwards.
  std::unique_ptr<std::byte, FreeDeleter> device(
      static_cast<std::byte*>(std::aligned_alloc(kPageSize, catalog.object_bytes())));
  if (!device) throw std::bad_alloc();
  const std::span<std::byte> device_span(device.get(), catalog.object_bytes());

  metrics::RunResult r;
  r.mode = "emul";
  r.model = model.name;
  r.tier = e.tier;
  r.policy = e.cache.policy;
  r.prefetch = e.cache.prefetch;
  r.nodes = 1;
  r.gpu_experts = e.cache.gpu_experts;
  r.pool_bytes = double(catalog.total_bytes());
  std::vector<cache::ExpertKey> layer_keys(model.top_k);
  const auto run_start = std::chrono::steady_clock::now();
  for (std::size_t token = 0; token < trace.tokens(); ++token) {
    const auto token_start = std::chrono::steady_clock::now();
    for (std::uint32_t layer = 0; layer < model.moe_layers; ++layer) {
      if (!catalog.keeps_layer(layer)) continue;  // emul.layers: the same layers as e.replays_layer()
      const auto experts = trace.experts(token, layer);
      for (std::size_t k = 0; k < experts.size(); ++k) layer_keys[k] = layer * model.experts + experts[k];
      for (std::size_t k = 0; k < experts.size(); ++k) {
        ++r.expert_accesses;
        const auto access = cache.access(layer_keys[k], layer_keys);
        if (access.hit) continue;
        if (access.evicted) {
          const auto victim = catalog.find(*access.evicted / model.experts, *access.evicted % model.experts);
          store.evict(*victim);
        }
        const std::uint32_t object = *catalog.find(layer, experts[k]);
        const auto faults_before = store.faults();
        const double start = seconds_since(run_start);
        store.load(object, device_span);
        const double end = seconds_since(run_start);
        r.switches.push_back({0, token, layer, experts[k], start, end, double(catalog.object_bytes()),
                              store.faults() - faults_before});
      }
    }
    r.token_latencies.push_back(seconds_since(token_start));
  }
  r.simulated_time_s = seconds_since(run_start);  // measured, not simulated: the replay's wall time
  r.tokens = trace.tokens();
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
  r.emul = info;
  return r;
}

}  // namespace rmai::emul
