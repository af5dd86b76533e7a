#pragma once
// 2 MiB hugetlb pages for the twin layout. On this paravirtualized VM, copying into 4 KiB shmem
// pages runs at ~2 GB/s (a TLB/EPT walk per page) against ~14 GB/s into huge pages, and allocating
// them is 5x faster too, so a region served into huge pages is several times faster. Huge pages
// must be reserved in advance (vm.nr_hugepages), which only root can do.
#include <cstdint>

namespace rmai::emul {

inline constexpr std::uint64_t kHugePageSize = 2ull << 20;  // x86-64 PMD page

// HugePages_Free from /proc/meminfo (0 when unreadable).
std::uint64_t free_huge_pages();

// Adds `pages` to vm.nr_hugepages for the lifetime of the object and takes them away afterwards, so
// that runs in parallel (clients of one memd) each get their own. The read-modify-write happens under
// an flock, since other processes do the same. Not root: ok() only when `pages` are free already
// (reserved by an administrator); otherwise the caller falls back to 4 KiB pages. The pages are
// touched once before use (a fresh frame costs a virtual machine's host 10x more the first time).
class HugePageReservation {
 public:
  explicit HugePageReservation(std::uint64_t pages);
  ~HugePageReservation();
  HugePageReservation(const HugePageReservation&) = delete;
  HugePageReservation& operator=(const HugePageReservation&) = delete;
  bool ok() const { return ok_; }

 private:
  bool ok_ = false;
  std::int64_t added_ = 0;  // pages added to nr_hugepages, given back by the destructor
};

}  // namespace rmai::emul
