#pragma once
// An emulated memory tier: how a switch brings an expert's bytes to the consumer (the stand-in for
// the GPU copy). One implementation per tier, registered by name (StoreRegistry), the emulator's
// counterpart of sim/tier.hpp.
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "emul/objects.hpp"
#include "config/registry.hpp"
#include "spec/experiment.hpp"

namespace rmai::emul {

// What a tier did, summed over its switches.
struct Counters {
  std::uint64_t faults = 0;           // page faults taken (served by a handler or by the kernel)
  std::uint64_t pages_mapped = 0;     // 4 KiB pages installed by the fault path
  std::uint64_t bytes_fetched = 0;    // bytes moved from the backing tier (remote, disk) into local memory
  // user_kernel_transitions as both halves count them (docs/architecture.md, "Counting kernel
  // entries"): the consuming thread's fault traps and the system calls of its read path.
  std::uint64_t transitions = 0;
  std::uint64_t handler_calls = 0;    // system calls of the user-space fault handler thread
  std::vector<double> fault_latency_s;  // per fault served by user space (empty where the kernel serves)
  Counters& operator+=(const Counters& o);
};

class ExpertStore {
 public:
  virtual ~ExpertStore() = default;
  // Makes every byte of `object` available and copies it into `device` (object-sized), as the GPU
  // copy of a switch would. Throws TransportError (source.hpp) or std::system_error on failure.
  virtual void load(std::uint32_t object, std::span<std::byte> device) = 0;
  // The cache evicted `object`: release its local copy so that the next load pays again.
  virtual void evict(std::uint32_t object) = 0;
  // Counters since construction (thread-safe snapshot).
  virtual Counters counters() const = 0;
  // counters().faults without copying the latencies (called once per switch).
  virtual std::uint64_t faults() const { return counters().faults; }
  virtual std::string describe() const = 0;
  // Bytes per fault served in user space ("page", "batch", "region"); "" where the kernel pages.
  virtual std::string granularity() const { return ""; }
  // The transport the store reads through (the remote-pool tiers); nullptr for local stores.
  virtual const class RemoteSource* remote() const { return nullptr; }
  // Whether load() may run on several threads at once for different objects (memory.<tier>.
  // concurrency > 1: faulting threads over the same regions); evict() is never concurrent with it.
  virtual bool concurrent_loads() const { return false; }
  // Whether what load() brings stays in host memory until evict() (a region's mapped pages, the page
  // cache), so that the store is the node's host cache itself (cache.host_experts): then evict()
  // follows the host cache's evictions, and a load of an object still held only copies it.
  virtual bool holds_until_evicted() const { return false; }
};

// Everything a store is built from.
struct StoreContext {
  const spec::Experiment& experiment;
  const Catalog& catalog;
  // Where a remote-pool tier's memd is: provider, server, secret, timeout. The store adds the read
  // size and depth of its own path (RemoteOptions) and connects. nullptr for the local tiers.
  const struct RemoteOptions* remote = nullptr;
  std::string scratch_dir;  // where disk tiers write their expert file
};

using StoreRegistry = Registry<ExpertStore, const StoreContext&>;

// Wall-clock seconds since `start` (steady clock).
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace rmai::emul
