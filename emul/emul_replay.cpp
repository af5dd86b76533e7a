#include "emul/emul_replay.hpp"

#include <atomic>
#include <barrier>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "config/errors.hpp"
#include "cache/expert_cache.hpp"
#include "cache/prefetcher.hpp"
#include "cache/replay.hpp"

namespace rmai::emul {
namespace {

// The loading threads of concurrent switches, started once per replay as a server's faulting
// threads are: thread 0 is the caller's, the others wait at a barrier for each layer's misses, so
// that the loads of a layer start together (starting threads per layer put ~190 us between them
// here, most of a 5 MiB copy).
class Loaders {
 public:
  explicit Loaders(std::uint32_t threads) : start_(threads), done_(threads) {
    try {
      for (std::uint32_t t = 1; t < threads; ++t)
        threads_.emplace_back([this, t] {
          for (;;) {
            start_.arrive_and_wait();
            if (stopping_) return;
            (*job_)(t);
            done_.arrive_and_wait();
          }
        });
    } catch (...) {  // a thread could not be made: release those that were, arriving for the rest
      stopping_ = true;
      start_.wait(start_.arrive(static_cast<std::ptrdiff_t>(threads - threads_.size())));
      throw;  // the made ones see stopping_ and end; the jthreads join
    }
  }
  ~Loaders() { stop(); }
  Loaders(const Loaders&) = delete;
  Loaders& operator=(const Loaders&) = delete;

  // Runs job(t) on every thread t and returns when all are done. job must not throw.
  void run(const std::function<void(std::uint32_t)>& job) {
    job_ = &job;
    start_.arrive_and_wait();
    job(0);
    done_.arrive_and_wait();
  }

 private:
  void stop() {
    stopping_ = true;
    start_.arrive_and_wait();  // the others see stopping_ and end; the jthreads join
  }

  std::barrier<> start_, done_;
  const std::function<void(std::uint32_t)>* job_ = nullptr;  // published by the barrier
  bool stopping_ = false;
  std::vector<std::jthread> threads_;
};

// The emulator's executor of the shared replay loop (cache/replay.hpp): a switch loads the expert
// through the store on the wall clock; the GPU's compute is not emulated. With concurrency C, the
// misses of a layer are loaded by C threads at once (faulting threads over the same regions), each
// into a device buffer of its own.
class StoreExecutor final : public cache::ReplayExecutor {
 public:
  StoreExecutor(const Catalog& catalog, ExpertStore& store, std::uint32_t experts, bool host_cache,
                std::span<const std::span<std::byte>> devices, metrics::SwitchLog& switches)
      : catalog_(catalog), store_(store), experts_(experts), host_cache_(host_cache), devices_(devices),
        switches_(switches), loaders_(static_cast<std::uint32_t>(devices.size())) {}

  double now() override { return seconds_since(start_); }
  void compute(double /*seconds*/) override {}
  // With a host cache the store is it (ExpertStore::holds_until_evicted): an expert leaving the GPU
  // stays in host memory until the host cache evicts it.
  void evicted(cache::ExpertKey key) override {
    if (!host_cache_) release(key);
  }
  void host_evicted(cache::ExpertKey key) override { release(key); }
  void switch_in(const cache::Access& a) override {
    const std::uint32_t object = *catalog_.find(a.layer, a.expert);
    const auto faults_before = store_.faults();
    const double start = now();
    store_.load(object, devices_[0]);
    switches_.add({0, a.token, a.layer, a.expert, start, now(), double(catalog_.object_bytes()),
                   store_.faults() - faults_before});
  }
  // The faults of concurrent loads cannot be told apart: each switch of the layer gets an equal
  // share of what they took together (summary.json's page_faults is the store's exact count).
  void switch_in_all(std::span<const cache::Access> misses, std::uint32_t concurrency) override {
    const auto faults_before = store_.faults();
    std::vector<metrics::SwitchRecord> loaded(misses.size());
    std::atomic<std::size_t> next{0};
    std::vector<std::exception_ptr> failures(devices_.size());
    const std::size_t threads = std::min<std::size_t>(concurrency, devices_.size());
    loaders_.run([&](std::uint32_t t) {
      if (t >= threads) return;
      try {
        for (std::size_t i; (i = next++) < misses.size();) {
          const auto& a = misses[i];
          const double start = now();
          store_.load(*catalog_.find(a.layer, a.expert), devices_[t]);
          loaded[i] = {0, a.token, a.layer, a.expert, start, now(), double(catalog_.object_bytes()), 0};
        }
      } catch (...) {
        failures[t] = std::current_exception();
        next = misses.size();  // the others stop after their current load
      }
    });
    for (const auto& failure : failures)
      if (failure) std::rethrow_exception(failure);
    const std::uint64_t faults = store_.faults() - faults_before;
    for (std::size_t i = 0; i < misses.size(); ++i) {
      loaded[i].faults = faults / misses.size() + (i < faults % misses.size() ? 1 : 0);
      switches_.add(loaded[i]);
    }
  }

 private:
  void release(cache::ExpertKey key) {
    store_.evict(*catalog_.find(cache::layer_of(key, experts_), cache::expert_of(key, experts_)));
  }

  const Catalog& catalog_;
  ExpertStore& store_;
  std::uint32_t experts_;
  bool host_cache_;
  std::span<const std::span<std::byte>> devices_;  // one per loading thread
  metrics::SwitchLog& switches_;
  Loaders loaders_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace

metrics::RunResult replay(const spec::Experiment& e, const traces::SpilledTrace& trace, const Catalog& catalog,
                          ExpertStore& store, const cache::ReplayProgress& progress) {
  const auto& model = e.model;
  if (e.cache.prefetch != cache::kNoPrefetch)
    throw InputError(e.values.child("cache").where("prefetch"), "the emulator has no prefetcher yet: use 'none' with mode: emul");
  if (e.serving.concurrency != 1 && !store.concurrent_loads())
    throw InputError(e.tier_params.where("concurrency"), "the emulator's " + e.tier + " store loads one expert at a time: "
                                                         "use 1 with mode: emul (rmai, page4k and dram take more)");
  if (e.cache.host_experts != 0 && !store.holds_until_evicted())
    throw InputError(e.values.child("cache").where("host_experts"), "the emulator's " + e.tier + " store has no host cache "
                     "(the stores that keep what they load, rmai, page4k and disk-mmap, do): use 0 with mode: emul");
  if (e.nodes != 1)
    throw InputError(e.values.where("nodes"), "the emulator runs one node per process: for sharing, run several 'rmai run --mode emul' "
                              "against one memd (emul.server)");
  const std::size_t keys = model.routed_experts_total();
  cache::ExpertCache cache(e.cache.gpu_experts, keys, cache::PolicyRegistry::instance().make(e.cache.policy, keys));
  std::optional<cache::ExpertCache> host;
  if (e.cache.host_experts > 0)
    host.emplace(e.cache.host_experts, keys, cache::PolicyRegistry::instance().make(e.cache.host_policy, keys));
  // The stand-ins for the GPU's HBM slot the expert is copied into, one per loading thread, reused
  // by every switch since nothing reads them afterwards; touched when made, since an HBM slot takes
  // no page faults.
  std::vector<PageBuffer> buffers;
  std::vector<std::span<std::byte>> devices;
  for (std::uint32_t t = 0; t < e.serving.concurrency; ++t) {
    buffers.push_back(touched_page_buffer(catalog.object_bytes()));
    devices.emplace_back(buffers.back().get(), catalog.object_bytes());
  }

  metrics::RunResult r;
  r.mode = "emul";
  r.model = model.name;
  r.tier = e.tier;
  r.policy = e.cache.policy;
  r.prefetch = e.cache.prefetch;
  r.nodes = 1;
  r.gpu_experts = e.cache.gpu_experts;
  // The tier's objects, and the host memory the host cache holds them in (as the simulator counts it).
  r.pool_bytes = double(catalog.total_bytes()) + double(e.cache.host_experts) * double(catalog.object_bytes());
  r.serving = cache::serving_settings(e);
  StoreExecutor exec(catalog, store, model.experts, host.has_value(), devices, r.switches);
  cache::ReplayPlan plan = cache::replay_plan(e, 0);
  plan.progress = progress;
  cache::add_tally(cache::replay(trace, plan, cache, exec, host ? &*host : nullptr), r);
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
