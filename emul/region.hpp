#pragma once
// A dynamic virtual memory region backed by remote objects: a virtual range registered with
// userfaultfd, one slot per object of the source's catalog. Touching a byte that is not mapped
// faults; a handler thread fetches the granule around it from the source and maps it, then wakes
// the faulting thread. This is RMAI's mechanism done in user space: at region granularity one fault
// brings in a whole expert (or a chunk of it) instead of thousands of 4 KiB faults.
//
// Two layouts serve the faults (docs/reference.md, "The emulator on this machine"):
// - twin: one memfd (shmem) mapped twice. The application mapping is registered for MISSING and
//   MINOR faults; the transport reads straight into the second, unregistered mapping (the one
//   registered with the NIC), then UFFDIO_CONTINUE installs the PTEs. No copy, few ioctls: the
//   in-kernel RMAI idea of the NIC writing into page frames and a PTE being installed.
// - copy: anonymous memory; the transport reads into a staging buffer and UFFDIO_COPY copies the
//   bytes in and maps them. Works everywhere userfaultfd does; here 4x slower than twin on huge pages,
//   but faster than twin on 4 KiB shmem pages (bench_emul).
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "emul/source.hpp"
#include "emul/store.hpp"

namespace rmai::emul {

enum class Granularity { Page, Batch, Region };
enum class Layout { Twin, Copy };

Granularity parse_granularity(const std::string& name);  // page | batch | region
const char* name_of(Granularity granularity);
const char* name_of(Layout layout);

struct RegionOptions {
  Granularity granularity = Granularity::Region;
  std::uint64_t batch_pages = 64;    // pages per fault at Batch
  std::uint64_t region_chunk = 0;    // bytes per fault at Region (a multiple of 4 KiB); 0: the whole object
  Layout layout = Layout::Twin;
  bool fallback = true;              // when twin is not possible here, use copy instead of failing
  // Twin at region granularity with whole 2 MiB granules: back the memfd with hugetlb pages (they
  // must be free: see huge_pages.hpp), falling back to 4 KiB shmem pages when they cannot be had.
  bool huge_pages = false;
};

// Whether this process can use userfaultfd at all, and if not, why (for skips and errors).
std::string userfaultfd_unavailable_reason();

class Region {
 public:
  // Reserves the range and starts the fault handler. Throws std::system_error (with what to do:
  // userfaultfd needs root or vm.unprivileged_userfaultfd=1) when the machine cannot.
  Region(ObjectSource& source, RegionOptions options);
  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  // The application's view of an object. Reading it faults the bytes in.
  std::span<const std::byte> object(std::uint32_t id) const;
  // Drops the object's pages (and their local copy) so that the next access faults and fetches
  // again. Must not race with accesses to the same object.
  void evict(std::uint32_t id);
  // Throws the first TransportError the handler met, if any. Faults after a transport failure are
  // resolved with zeros so that no thread hangs; callers check after reading.
  void check() const;

  Counters counters() const;
  std::uint64_t faults() const;  // counters().faults without copying the latencies
  Layout layout() const { return layout_; }
  bool huge_pages() const { return huge_; }
  const RegionOptions& options() const { return options_; }
  std::uint64_t granule_bytes() const;  // bytes one fault maps (at most: the object's end cuts it)

 private:
  struct Granule {
    std::uint32_t object;
    std::uint64_t offset, bytes;  // the object's bytes: [offset, offset + bytes)
    std::uint64_t map_bytes;      // mapped from offset: bytes rounded up to the mapping's page
  };
  Granule granule_at(std::uintptr_t address) const;
  std::byte* app(std::uint32_t object) const { return app_ + std::uint64_t(object) * slot_bytes_; }
  std::byte* fill(std::uint32_t object) const { return fill_ + std::uint64_t(object) * slot_bytes_; }
  void release();  // unmaps and closes what the constructor made
  void setup_twin();
  void setup_copy();
  void register_range(std::uint64_t mode);
  void handle_faults();
  void serve(std::uintptr_t address);
  void serve_twin(const Granule& g);
  void serve_copy(const Granule& g);
  void resolve_with_zeros(const Granule& g);
  // Registrations with the source of memory the transport reads into (registered_).
  void register_with_source(std::byte* start, std::uint64_t bytes);
  void deregister_with_source(std::byte* begin, const std::byte* end);  // those starting in [begin, end)
  void wake(const Granule& g);
  void ioctl_or_throw(unsigned long request, void* argument, const char* name);

  ObjectSource& source_;
  RegionOptions options_;
  Layout layout_;
  bool huge_ = false;
  std::uint64_t object_bytes_ = 0, slot_bytes_ = 0, total_bytes_ = 0;
  int uffd_ = -1;
  int memfd_ = -1;      // twin only
  int stop_fd_ = -1;    // eventfd that ends the handler
  std::byte* app_ = nullptr;
  std::byte* fill_ = nullptr;  // twin: the second mapping of the memfd
  std::byte* staging_ = nullptr;  // copy: where the transport reads one granule before UFFDIO_COPY
  // Granules mapped, by object: a fault on a mapped granule is a late duplicate and only needs a wake.
  std::vector<std::vector<bool>> mapped_;
  // What this region registered with the source (start -> bytes): copy's staging buffer; twin's
  // granules of the fill mapping, each from its fetch until its eviction. Guarded by serving_.
  std::map<std::byte*, std::uint64_t> registered_;
  mutable std::mutex mutex_;  // guards mapped_, counters_ and error_
  // Held by the handler for the whole of a fault, wake included: counters() waits for the fault
  // in service, so that a thread that was just woken sees its own fault counted.
  mutable std::mutex serving_;
  Counters counters_;
  std::string error_;
  std::atomic<bool> failed_{false};
  std::thread handler_;
};

}  // namespace rmai::emul
