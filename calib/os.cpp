// os: the kernel's costs on the paging paths, as the emulator meets them on this machine. Each
// probe times the operation itself (a syscall, a fault, an ioctl) many times over and divides;
// where the simulator's split of a cost cannot be measured apart, the derivation says so.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "calib/probes.hpp"
#include "calib/system.hpp"
#include "posix/errors.hpp"

namespace rmai::calib {
namespace {
using posix::throw_errno;

constexpr std::size_t kPage = 4096;
constexpr std::size_t kHugePage = 2 << 20;
constexpr std::size_t kMiB = 1 << 20;

void zap(std::byte* start, std::size_t bytes) {
  if (::madvise(start, bytes, MADV_DONTNEED) != 0) throw_errno("madvise(MADV_DONTNEED)");
}

void allocate(int fd, std::size_t bytes, const char* what) {
  if (::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) != 0) throw_errno(std::string("fallocate of ") + what);
}

void punch(int fd, std::size_t bytes, const char* what) {
  if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(bytes)) != 0)
    throw_errno(std::string("fallocate(PUNCH_HOLE) of ") + what);
}

// A thread blocked in poll() until the object goes: the region's fault handler, or the thread
// serving a userfaultfd (`serve`, called whenever `fd` is readable).
class Sibling {
 public:
  explicit Sibling(int fd = -1, std::function<void()> serve = {}) : stop_(::eventfd(0, EFD_CLOEXEC)) {
    if (stop_.get() < 0) throw_errno("eventfd");
    thread_ = std::thread([this, fd, serve = std::move(serve)] {
      pollfd fds[2] = {{stop_.get(), POLLIN, 0}, {fd, POLLIN, 0}};
      for (;;) {
        if (::poll(fds, fd >= 0 ? 2 : 1, -1) < 0) continue;  // EINTR
        if (fds[0].revents) return;
        if (fds[1].revents) serve();
      }
    });
  }
  ~Sibling() {
    const std::uint64_t one = 1;
    if (::write(stop_.get(), &one, sizeof one) != sizeof one) std::terminate();  // the thread would never end
    thread_.join();
  }
  Sibling(const Sibling&) = delete;
  Sibling& operator=(const Sibling&) = delete;

 private:
  Fd stop_;
  std::thread thread_;
};

// Times `n`-page ranges being mapped by UFFDIO_CONTINUE over page-cache pages of `page` bytes and
// then touched once per 4 KiB (`mapped`), and the same touch once more, warm (`warm`): the slope of
// the first over the second's is the cost of a page mapped and made usable. Each repeat is the
// mean of several trials over `app` (registered MINOR), the range zapped after each.
struct ContinueSweeps {
  SizeSweep mapped, warm;
};
ContinueSweeps continue_sweep(int uffd, std::byte* app, std::size_t pages_in_app, std::size_t page,
                              const std::vector<std::size_t>& counts, unsigned repeats, std::size_t pages_per_repeat,
                              std::uint64_t& keep) {
  ContinueSweeps out;
  std::size_t at = 0;
  for (const std::size_t n : counts) {
    out.mapped.sizes.push_back(double(n));
    out.warm.sizes.push_back(double(n));
    const std::size_t trials = std::max<std::size_t>(1, pages_per_repeat / n);
    std::vector<double> mapped, warm;
    for (unsigned r = 0; r < repeats; ++r) {
      double first = 0, second = 0;
      for (std::size_t t = 0; t < trials; ++t) {
        if (at + n > pages_in_app) at = 0;
        std::byte* start = app + at * page;
        const std::size_t bytes = n * page;
        const double t0 = now_s();
        uffd_continue(uffd, start, bytes);
        keep += touch(start, bytes, kPage);
        const double t1 = now_s();
        keep += touch(start, bytes, kPage);
        const double t2 = now_s();
        first += t1 - t0;
        second += t2 - t1;
        zap(start, bytes);
        at += n;
      }
      mapped.push_back(first / double(trials));
      warm.push_back(second / double(trials));
    }
    out.mapped.times.push_back(mapped);
    out.warm.times.push_back(warm);
  }
  return out;
}

// The per-page cost from the two sweeps: the mapped slope minus the warm one, at least 0.
Measurement per_page(const ContinueSweeps& sweeps, std::string probe) {
  const LineFit mapped = fit_medians(sweeps.mapped), warm = fit_medians(sweeps.warm);
  const auto mapped_each = fit_each_repeat(sweeps.mapped), warm_each = fit_each_repeat(sweeps.warm);
  std::vector<double> per_repeat;
  for (std::size_t r = 0; r < mapped_each.size(); ++r) per_repeat.push_back(std::max(0.0, mapped_each[r].slope - warm_each[r].slope));
  Measurement m = from_repeats(per_repeat, std::move(probe));
  m.fit = mapped;
  m.value = std::max(0.0, mapped.slope - warm.slope);
  m.derivation = "the mapped slope " + human(mapped.slope, Unit::Time) + " minus the warm touch's " + human(warm.slope, Unit::Time) +
                 " per page" + (mapped.slope < warm.slope ? "; negative, so 0" : "") + " (the fit's residual is the mapped one's)";
  return m;
}

std::uint64_t meminfo_kib(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  std::uint64_t value = 0;
  while (in >> name >> value) {
    if (name == key + ":") return value;
    in.ignore(1 << 10, '\n');
  }
  throw std::runtime_error("/proc/meminfo has no " + key);
}

}  // namespace

Entries probe_os(const Settings& s) {
  Entries out;
  std::uint64_t keep = 0;
  const unsigned R = s.repeats;

  Measurement page;
  page.value = double(::sysconf(_SC_PAGESIZE));
  page.probe = "sysconf(_SC_PAGESIZE)";
  out.push_back({"page_size", Unit::Bytes, page});

  // A system call round trip.
  const int calls = s.quick ? 50000 : 200000;
  std::vector<double> syscall_s;
  for (unsigned r = 0; r < R; ++r) {
    const double start = now_s();
    for (int i = 0; i < calls; ++i) keep += static_cast<std::uint64_t>(::syscall(SYS_getppid));
    syscall_s.push_back((now_s() - start) / calls);
  }
  const Measurement syscall = from_repeats(syscall_s, "syscall(SYS_getppid) in a loop, " + std::to_string(calls) + " calls per repeat");
  Measurement trap = syscall;
  trap.derivation = "taken as one system call round trip (exception entry and return to user cost the same "
                    "kernel entry and exit); no probe separates the trap from the fault handling after it";
  s.note("os: syscall " + human(syscall.value, Unit::Time));

  // One PTE installed and made usable: UFFDIO_CONTINUE of n-page ranges of cached shmem.
  const std::vector<std::size_t> counts = s.quick ? std::vector<std::size_t>{1, 16, 256, 1024}
                                                  : std::vector<std::size_t>{1, 4, 16, 64, 256, 1024, 2048};
  const std::size_t pte_pages = counts.back();
  Measurement pte;
  {
    const Fd fd = memfd("rmai-calibrate-pte", pte_pages * kPage, false);
    allocate(fd.get(), pte_pages * kPage, "the PTE probe's memfd");
    const Mapping app = Mapping::shared(fd.get(), pte_pages * kPage, "the PTE probe's memfd");
    const Fd uffd = userfaultfd(UFFD_FEATURE_MINOR_SHMEM);
    uffd_register(uffd.get(), app.data(), app.size(), UFFDIO_REGISTER_MODE_MINOR);
    pte = per_page(continue_sweep(uffd.get(), app.data(), pte_pages, kPage, counts, R, s.quick ? 256 : 1024, keep),
                   "UFFDIO_CONTINUE of n-page ranges (n = " + std::to_string(counts.front()) + ".." +
                       std::to_string(counts.back()) + ", " + std::to_string(counts.size()) +
                       " sizes) of cached shmem, then the first touch of each page (what the first access costs: on "
                       "a paravirtualized guest the hypervisor's shadow PTE is filled then), against a second, warm "
                       "touch; fits t(n) = a + n x slope of both");
  }
  s.note("os: pte_install " + human(pte.value, Unit::Time));

  // A write fault on a cached shmem page: trap + handler + one PTE.
  const std::size_t fault_pages = s.quick ? 4096 : 16384;
  std::vector<double> fault_s;
  {
    const Fd fd = memfd("rmai-calibrate-faults", fault_pages * kPage, false);
    allocate(fd.get(), fault_pages * kPage, "the fault probe's memfd");
    const Mapping map = Mapping::shared(fd.get(), fault_pages * kPage, "the fault probe's memfd");
    for (unsigned r = 0; r <= R; ++r) {  // the first pass warms up, untimed
      const double start = now_s();
      for (std::size_t p = 0; p < fault_pages; ++p) *(volatile std::byte*)(map.data() + p * kPage) = std::byte(r);
      if (r > 0) fault_s.push_back((now_s() - start) / double(fault_pages));
      zap(map.data(), map.size());
    }
  }
  const double fault = median(fault_s);
  std::vector<double> handler_s;
  for (const double f : fault_s) handler_s.push_back(std::max(0.0, f - trap.value - pte.value));
  Measurement handler = from_repeats(
      handler_s,
      "write faults on the pages of a cached shmem mapping (each one fault that finds the page and maps one PTE; no "
      "allocation, no I/O), " + std::to_string(fault_pages) + " per repeat, mean; median fault " + human(fault, Unit::Time),
      "the fault minus fault_trap (" + human(trap.value, Unit::Time) + ") minus pte_install (" + human(pte.value, Unit::Time) +
          ")" + (fault < trap.value + pte.value ? "; negative, so 0" : ""));
  s.note("os: write fault on cached shmem " + human(fault, Unit::Time) + " -> fault_handler " + human(handler.value, Unit::Time));

  // The userfaultfd round trip: a MISSING fault served by a handler thread against the kernel alone.
  const std::size_t uffd_pages = s.quick ? 512 : 2048;
  std::vector<double> served_s, kernel_s, lookup_s;
  {
    const Mapping served = Mapping::untouched(uffd_pages * kPage, "the userfaultfd probe's range");
    const Mapping plain = Mapping::untouched(uffd_pages * kPage, "the userfaultfd probe's range");
    const Fd uffd = userfaultfd(0);
    uffd_register(uffd.get(), served.data(), served.size(), UFFDIO_REGISTER_MODE_MISSING);
    const int u = uffd.get();
    const Sibling handler_thread(u, [u] {
      uffd_msg messages[16];
      const ssize_t n = ::read(u, messages, sizeof messages);  // EAGAIN (n < 0): another wake-up took them
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(uffd_msg)); ++i) {
        if (messages[i].event != UFFD_EVENT_PAGEFAULT) continue;
        uffdio_zeropage z{};
        z.range.start = messages[i].arg.pagefault.address & ~std::uint64_t(kPage - 1);
        z.range.len = kPage;
        if (::ioctl(u, UFFDIO_ZEROPAGE, &z) != 0 && errno != EEXIST) std::terminate();  // the faulter would hang
      }
    });
    for (unsigned r = 0; r < R; ++r) {
      const double t0 = now_s();
      keep += touch(served.data(), served.size(), kPage);
      const double t1 = now_s();
      keep += touch(plain.data(), plain.size(), kPage);
      const double t2 = now_s();
      served_s.push_back((t1 - t0) / double(uffd_pages));
      kernel_s.push_back((t2 - t1) / double(uffd_pages));
      lookup_s.push_back(std::max(0.0, served_s.back() - kernel_s.back()));
      zap(served.data(), served.size());
      zap(plain.data(), plain.size());
    }
  }
  const Measurement lookup = from_repeats(
      lookup_s,
      "read faults on anonymous memory registered with userfaultfd (MISSING), served by a thread blocked in poll() that "
      "reads the message and resolves it with UFFDIO_ZEROPAGE (as the emulator's region handler does), median " +
          human(median(served_s), Unit::Time) + ", against the same faults served by the kernel alone (the zero page), median " +
          human(median(kernel_s), Unit::Time) + "; " + std::to_string(uffd_pages) + " faults each per repeat",
      "the difference per repeat (the two threads' wake-ups, the message and the ioctl)");
  s.note("os: region_lookup (userfaultfd round trip) " + human(lookup.value, Unit::Time));

  // Pages inserted into the page cache: fallocate of a shmem memfd.
  const std::size_t insert_bytes = (s.quick ? 64 : 256) * kMiB;
  std::vector<double> insert_s;
  {
    const Fd fd = memfd("rmai-calibrate-page-cache", insert_bytes, false);
    for (unsigned r = 0; r < R; ++r) {
      const double start = now_s();
      allocate(fd.get(), insert_bytes, "the page-cache probe's memfd");
      insert_s.push_back((now_s() - start) / double(insert_bytes / kPage));
      punch(fd.get(), insert_bytes, "the page-cache probe's memfd");
    }
  }
  const Measurement insert = from_repeats(
      insert_s, "fallocate() of a " + human(double(insert_bytes), Unit::Bytes) +
                    " shmem memfd (allocate, zero and insert each 4 KiB page into the page cache and LRU), per page");
  s.note("os: page_cache_insert " + human(insert.value, Unit::Time));

  // Eviction of a region expert: the hole punched in its hugetlb slot, as emul/region.cpp evicts.
  const std::size_t slot = 3 * kHugePage;
  const int trials = s.quick ? 5 : 10;
  std::vector<double> evict_s, populate_s;  // populate: allocating the slot's fresh huge pages
  {
    const Fd fd = memfd("rmai-calibrate-evict", slot, true);
    const Mapping map = Mapping::shared(fd.get(), slot, "the eviction probe's hugetlb slot");
    const Sibling blocked;  // the region's handler thread, blocked in poll() meanwhile
    for (unsigned r = 0; r < R; ++r) {
      std::vector<double> times, populate;
      for (int t = 0; t < trials; ++t) {
        const double fill = now_s();
        if (::madvise(map.data(), slot, MADV_POPULATE_WRITE) != 0) throw_errno("madvise(MADV_POPULATE_WRITE) of a hugetlb slot");
        populate.push_back(now_s() - fill);
        keep += touch(map.data(), slot, kPage);
        const double start = now_s();
        punch(fd.get(), slot, "the eviction probe's hugetlb slot");
        times.push_back(now_s() - start);
      }
      evict_s.push_back(median(times));
      populate_s.push_back(median(populate));
    }
  }
  const Measurement evict = from_repeats(
      evict_s, "fallocate(PUNCH_HOLE) of a " + human(double(slot), Unit::Bytes) +
                   " hugetlb memfd slot (a 5.25 MiB emulated Mixtral expert, experiments/validate.yaml) whose pages were "
                   "populated and touched, with a sibling thread blocked in poll(): the emulator's eviction of one region "
                   "expert (emul/region.cpp); median of " + std::to_string(trials) + " per repeat",
      "one number per evicted expert: it grows with the expert's size, which the simulator does not scale");
  s.note("os: tlb_shootdown (evict one expert) " + human(evict.value, Unit::Time));

  Measurement huge_size;
  huge_size.value = double(meminfo_kib("Hugepagesize")) * 1024;
  huge_size.probe = "Hugepagesize in /proc/meminfo";

  // One huge page mapped and made usable: UFFDIO_CONTINUE of n cached hugetlb pages.
  const std::vector<std::size_t> huge_counts = s.quick ? std::vector<std::size_t>{1, 2, 4, 8}
                                                       : std::vector<std::size_t>{1, 2, 4, 8, 16};
  const std::size_t huge_pages = huge_counts.back();
  Measurement huge_map;
  {
    const Fd fd = memfd("rmai-calibrate-huge-map", huge_pages * kHugePage, true);
    const Mapping fill = Mapping::shared(fd.get(), huge_pages * kHugePage, "the huge-map probe's memfd");
    if (::madvise(fill.data(), fill.size(), MADV_POPULATE_WRITE) != 0) throw_errno("madvise(MADV_POPULATE_WRITE) of hugetlb pages");
    const Mapping app = Mapping::shared(fd.get(), huge_pages * kHugePage, "the huge-map probe's memfd");
    const Fd uffd = userfaultfd(UFFD_FEATURE_MINOR_HUGETLBFS);
    uffd_register(uffd.get(), app.data(), app.size(), UFFDIO_REGISTER_MODE_MINOR);
    huge_map = per_page(continue_sweep(uffd.get(), app.data(), huge_pages, kHugePage, huge_counts, R, huge_pages, keep),
                        "UFFDIO_CONTINUE of n cached 2 MiB hugetlb pages (n = 1.." + std::to_string(huge_pages) +
                            ", as the emulator's twin layout maps a region), then the first touch of every 4 KiB of "
                            "them, against a second, warm touch; fits t(n) = a + n x slope of both");
  }
  // A region fault also needs the page frames its bytes land in: the emulator's twin layout
  // allocates (and the kernel zeroes) fresh huge pages for the slot the last eviction punched, as
  // a kernel region would take frames for the pages it fetches. Mapping one huge page therefore
  // includes its allocation (the eviction probe's MADV_POPULATE_WRITE, per huge page).
  const double allocation = median(populate_s) / double(slot / kHugePage);
  const double continue_only = huge_map.value;
  huge_map.value += allocation;
  huge_map.derivation += "; plus allocating and zeroing the fresh huge page (MADV_POPULATE_WRITE of the slot the "
                         "last eviction punched, as each emulated region fault does before its reads): " +
                         human(continue_only, Unit::Time) + " + " + human(allocation, Unit::Time);
  s.note("os: huge_map " + human(huge_map.value, Unit::Time));

  out.push_back({"fault_trap", Unit::Time, trap});
  out.push_back({"fault_handler", Unit::Time, handler});
  out.push_back({"region_lookup", Unit::Time, lookup});
  out.push_back({"pte_install", Unit::Time, pte});
  out.push_back({"syscall", Unit::Time, syscall});
  out.push_back({"page_cache_insert", Unit::Time, insert});
  out.push_back({"tlb_shootdown", Unit::Time, evict});
  out.push_back({"huge_page_size", Unit::Bytes, huge_size});
  out.push_back({"huge_map", Unit::Time, huge_map});
  if (keep == 42) s.note("");  // keeps the loads: the compiler cannot know the sum
  return out;
}

}  // namespace rmai::calib
