// disk-mmap: the paper's disk baseline. The expert file (expert_file.hpp) is mapped read-only and
// shared; a switch memcpy()s the object out of the mapping into the device buffer, and the kernel
// does the rest: page faults, page-cache lookups, readahead, fault-around. Eviction unmaps the
// object's pages (MADV_DONTNEED) and drops them from the page cache (POSIX_FADV_DONTNEED, widened
// to whole large folios: ExpertFile::drop), so the next load of it faults and reads the disk again.
//
// What of the tier's parameters the kernel lets a process set, and what it does instead:
// - readahead: the window of a major fault is the device's read_ahead_kb, a system-wide setting
// left
//   alone here (/sys/dev/block/MAJ:MIN/queue/read_ahead_kb; 8 MiB on the test VM, 128 KiB by Linux
//   default). A process chooses only among: no readahead (MADV_RANDOM: one page per major fault),
//   the device's window read around the fault (MADV_NORMAL), or twice it (POSIX_FADV_SEQUENTIAL on
//   the mapped file). readahead <= 4 KiB selects the first, readahead >= twice the device's window
//   the last, anything else the device's window; describe() says which and what it is.
// - fault_around: debugfs fault_around_bytes, system-wide (Linux default 64 KiB): reported, not
// set.
// - queue_depth: the fault path is synchronous, one read in flight per faulting thread (plus the
//   kernel's own asynchronous readahead); only 1 can be emulated, anything else is an InputError.
//
// Counters, per load: faults = minor + major faults of the copying thread during the copy
// (getrusage(RUSAGE_THREAD)), each a kernel entry, so transitions = faults (an evict's two system
// calls are not on the switch path and count in neither half); bytes_fetched = bytes of the object not in the page cache before the copy
// (mincore): what the disk had to supply for it. The objects lie apart in the file, holes between
// them, so that no readahead window reaches a neighbour (packed, a cold 3.8 MiB load with the 8 MiB
// window made the device read ~6.7 MiB here, and the neighbours found their pages cached later).
// pages_mapped = pages of the object whose page-table
// entry the copy installed (present bits of /proc/self/pagemap before and after; 0 when it is
// unreadable).
#include <fcntl.h>
#if defined(__SANITIZE_ADDRESS__)
#define RMAI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RMAI_ASAN 1
#endif
#endif
#if RMAI_ASAN
#include <sanitizer/asan_interface.h>
#endif
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "config/errors.hpp"
#include "emul/expert_file.hpp"
#include "emul/store.hpp"
#include "posix/errors.hpp"
#include "posix/files.hpp"

namespace rmai::emul {
namespace {

// Under AddressSanitizer, memcpy first reads the shadow of the source range, whose pages are
// touched for the first time then: their faults would count as the tier's (55 of 486 for a
// 1.7 MiB object). Reading the shadow before the counted window takes them outside it.
void touch_sanitizer_shadow([[maybe_unused]] const std::byte* begin, [[maybe_unused]] std::size_t bytes) {
#if RMAI_ASAN
  __asan_region_is_poisoned(const_cast<std::byte*>(begin), bytes);
#endif
}

using posix::read_number;
using posix::throw_errno;

// The read_ahead_kb of the block device under `path`, in bytes: the device's queue, or for a
// partition its disk's. Nothing for files not on a block device (overlayfs, btrfs, NFS).
std::optional<std::uint64_t> device_readahead(const std::filesystem::path& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  const std::string dev =
      "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
  for (const char* queue : {"/queue/read_ahead_kb", "/../queue/read_ahead_kb"})
    if (const auto kb = read_number(dev + queue)) return *kb * 1024;
  return std::nullopt;
}

std::string kib(std::uint64_t bytes) { return std::to_string(bytes / 1024) + " KiB"; }

std::uint64_t thread_faults() {
  rusage usage{};
  if (getrusage(RUSAGE_THREAD, &usage) != 0) throw_errno("getrusage(RUSAGE_THREAD)");
  return static_cast<std::uint64_t>(usage.ru_minflt) + static_cast<std::uint64_t>(usage.ru_majflt);
}

class DiskMmapStore final : public ExpertStore {
 public:
  explicit DiskMmapStore(const StoreContext& c) : catalog_(c.catalog) {
    const auto& params = c.experiment.tier_params;
    if (params.count("queue_depth") != 1)
      throw InputError(params.where("queue_depth"),
                       "must be 1 in mode: emul (the mmap fault path is synchronous)");
    // The largest window a fault may read is twice the device's (POSIX_FADV_SEQUENTIAL, below),
    // read around the faulting page: a gap of that much after each object keeps every window
    // inside one object and its holes, so the disk supplies each switch all of its bytes, as the
    // simulator's disk-mmap assumes (without it, ~60% of a switch's bytes on this VM were cached
    // by a neighbour's readahead).
    const std::filesystem::path dir = scratch_dir_of(c);
    device_window_ = device_readahead(dir);
    const std::uint64_t widest = 2 * std::max<std::uint64_t>(device_window_.value_or(0),
                                                             static_cast<std::uint64_t>(params.number("readahead")));
    file_ = std::make_unique<ExpertFile>(c.catalog, dir, widest);
    map_ = static_cast<std::byte*>(
        mmap(nullptr, file_->bytes(), PROT_READ, MAP_SHARED, file_->fd(), 0));
    if (map_ == MAP_FAILED) throw_errno(file_->path().string() + ": mmap");
    try {
      apply_readahead(params.number("readahead"));
    } catch (...) {
      munmap(map_, file_->bytes());
      throw;
    }
    const std::uint64_t fault_around = static_cast<std::uint64_t>(params.number("fault_around"));
    const auto kernel_around = read_number("/sys/kernel/debug/fault_around_bytes");
    describe_ +=
        ", fault-around " +
        (kernel_around ? kib(*kernel_around) : std::string("unknown (no debugfs; Linux: 64 KiB)")) +
        " (" + kib(fault_around) + " asked)";
    pagemap_ = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pagemap_ < 0) describe_ += ", pages_mapped not counted (no /proc/self/pagemap)";
  }

  ~DiskMmapStore() override {
    munmap(map_, file_->bytes());
    if (pagemap_ >= 0) close(pagemap_);
  }

  void load(std::uint32_t object, std::span<std::byte> device) override {
    const ObjectInfo& info = catalog_.object(object);
    if (device.size() != info.bytes)
      throw std::invalid_argument("disk-mmap: the device buffer is not object-sized");
    const std::byte* source = map_ + file_->offset(object);
    // Everything measured is read outside the counted window: the bookkeeping's own allocations and
    // system calls must not show up as the tier's faults.
    const std::uint64_t cached = resident_bytes(source, info.bytes);
    const std::uint64_t mapped_before = mapped_pages(source, info.bytes);
    // The destination's first touch is not the tier's fault: take it before counting.
    for (std::uint64_t at = 0; at < device.size(); at += kPageSize) device[at] = std::byte{0};
    touch_sanitizer_shadow(source, info.bytes);
    const std::uint64_t faults_before = thread_faults();
    std::memcpy(device.data(), source, info.bytes);
    const std::uint64_t faults = thread_faults() - faults_before;
    const std::uint64_t mapped_after = mapped_pages(source, info.bytes);

    std::lock_guard lock(mutex_);
    counters_.faults += faults;
    counters_.transitions += faults;
    counters_.bytes_fetched += info.bytes - cached;
    // Only a concurrent evict of the same object (a caller's bug) could unmap pages meanwhile.
    counters_.pages_mapped += mapped_after > mapped_before ? mapped_after - mapped_before : 0;
  }

  // The pages stay mapped and cached until evicted: the page cache is disk-mmap's host cache.
  bool holds_until_evicted() const override { return true; }

  void evict(std::uint32_t object) override {
    const std::uint64_t offset = file_->offset(object);
    const std::uint64_t bytes = catalog_.object(object).bytes;
    // Unmapped first: the page cache keeps pages that some process still maps.
    if (madvise(map_ + offset, bytes, MADV_DONTNEED) != 0)
      throw_errno(file_->path().string() + ": madvise(MADV_DONTNEED)");
    file_->drop(offset, bytes);
  }

  Counters counters() const override {
    std::lock_guard lock(mutex_);
    return counters_;
  }

  std::string describe() const override { return describe_; }

 private:
  // See the header comment: the closest of the three windows a process may choose.
  // Sets describe_ to what the kernel will do, e.g. "mmap, readahead 8192 KiB: the device's
  // read_ahead_kb (128 KiB asked)".
  void apply_readahead(double asked_bytes) {
    const std::uint64_t asked = static_cast<std::uint64_t>(asked_bytes);
    const auto& device = device_window_;
    const std::string window = device ? kib(*device) : std::string("unknown");
    if (asked <= kPageSize) {
      if (madvise(map_, file_->bytes(), MADV_RANDOM) != 0)
        throw_errno(file_->path().string() + ": madvise(MADV_RANDOM)");
      describe_ = "mmap, no readahead: MADV_RANDOM";
    } else if (device && asked >= 2 * *device) {
      // The mapped file's window becomes twice the device's: the largest a process may ask for.
      if (const int error = posix_fadvise(file_->fd(), 0, 0, POSIX_FADV_SEQUENTIAL); error != 0)
        throw std::system_error(error, std::generic_category(),
                                file_->path().string() + ": posix_fadvise(SEQUENTIAL)");
      describe_ = "mmap, readahead " + kib(2 * *device) +
                  ": twice the device's read_ahead_kb, POSIX_FADV_SEQUENTIAL";
    } else {
      describe_ = "mmap, readahead " + window + ": the device's read_ahead_kb";
    }
    describe_ += " (" + kib(asked) + " asked)";
  }

  // Pages of [address, address + bytes) with a present page-table entry here (bit 63 of each
  // 8-byte /proc/self/pagemap entry, Documentation/admin-guide/mm/pagemap.rst).
  std::uint64_t mapped_pages(const std::byte* address, std::uint64_t bytes) const {
    if (pagemap_ < 0) return 0;
    const std::uint64_t pages = (bytes + kPageSize - 1) / kPageSize;
    std::vector<std::uint64_t> entries(pages);
    const std::uint64_t first = reinterpret_cast<std::uintptr_t>(address) / kPageSize;
    const std::uint64_t want = pages * sizeof(std::uint64_t);
    for (std::uint64_t done = 0; done < want;) {
      const ssize_t n = pread(pagemap_, reinterpret_cast<char*>(entries.data()) + done, want - done,
                              static_cast<off_t>(first * sizeof(std::uint64_t) + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw_errno("read of /proc/self/pagemap");
      done += static_cast<std::uint64_t>(n);
    }
    std::uint64_t present = 0;
    for (const std::uint64_t e : entries) present += e >> 63;
    return present;
  }

  const Catalog& catalog_;
  std::optional<std::uint64_t> device_window_;  // the scratch device's read_ahead_kb, in bytes
  std::unique_ptr<ExpertFile> file_;
  std::byte* map_ = nullptr;
  int pagemap_ = -1;
  std::string describe_;
  mutable std::mutex mutex_;
  Counters counters_;
};

RMAI_REGISTER(StoreRegistry, "disk-mmap",
              "expert file mapped with mmap: page faults, the kernel's readahead and fault-around",
              [](const StoreContext& c) { return std::make_unique<DiskMmapStore>(c); });

}  // namespace
}  // namespace rmai::emul
