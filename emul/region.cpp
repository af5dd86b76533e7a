#include "emul/region.hpp"

#include <fcntl.h>
#include <linux/memfd.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "config/errors.hpp"
#include "emul/huge_pages.hpp"
#include "posix/errors.hpp"

namespace rmai::emul {
namespace {

// Slots are aligned to the huge page so that a slot never shares a huge page or a page-table leaf
// with its neighbour.
constexpr std::uint64_t kSlotAlign = kHugePageSize;

std::uint64_t round_up(std::uint64_t value, std::uint64_t to) { return (value + to - 1) / to * to; }

using posix::throw_errno;

// A userfaultfd, through the syscall or, where that is refused, /dev/userfaultfd. Never in
// user-mode-only mode: the transport's kernel-side writes must be able to fault too.
int open_userfaultfd() {
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd >= 0) return fd;
  const int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    close(dev);
    if (fd >= 0) return fd;
  }
  throw_errno("userfaultfd (needs root, access to /dev/userfaultfd, or vm.unprivileged_userfaultfd=1)");
}

// Opens a userfaultfd and negotiates `features`; -1 when the kernel lacks them.
int userfaultfd_with(std::uint64_t features) {
  const int fd = open_userfaultfd();
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (ioctl(fd, UFFDIO_API, &api) == 0 && (api.features & features) == features) return fd;
  close(fd);
  return -1;
}

}  // namespace

Granularity parse_granularity(const std::string& name) {
  if (name == "page") return Granularity::Page;
  if (name == "batch") return Granularity::Batch;
  if (name == "region") return Granularity::Region;
  throw InputError("emul.granularity", "unknown granularity '" + name + "' (page, batch, region)");
}

const char* name_of(Granularity g) {
  switch (g) {
    case Granularity::Page: return "page";
    case Granularity::Batch: return "batch";
    case Granularity::Region: return "region";
  }
  return "?";
}

const char* name_of(Layout layout) { return layout == Layout::Twin ? "twin" : "copy"; }

std::string userfaultfd_unavailable_reason() {
  try {
    close(open_userfaultfd());
    return "";
  } catch (const std::system_error& e) {
    return e.what();
  }
}

Region::Region(ObjectSource& source, RegionOptions options)
    : source_(source), options_(options), layout_(options.layout) {
  const Catalog& catalog = source.catalog();
  object_bytes_ = catalog.object_bytes();
  slot_bytes_ = round_up(object_bytes_, kSlotAlign);
  total_bytes_ = slot_bytes_ * catalog.objects().size();
  // The callers validated what the user gave (schemas, emul/stores/region.cpp): these are bugs.
  if (options_.granularity == Granularity::Batch && options_.batch_pages == 0)
    throw std::invalid_argument("Region: a batch of no pages");
  if (options_.region_chunk % kPageSize != 0) throw std::invalid_argument("Region: a region chunk of partial pages");
  mapped_.assign(catalog.objects().size(), std::vector<bool>((object_bytes_ + granule_bytes() - 1) / granule_bytes()));

  // A huge page maps as a whole: only whole-object granules or chunks of whole huge pages fit.
  huge_ = options_.huge_pages && layout_ == Layout::Twin && options_.granularity == Granularity::Region &&
          options_.region_chunk % kHugePageSize == 0;
  if (huge_) {
    uffd_ = userfaultfd_with(UFFD_FEATURE_MINOR_HUGETLBFS);
    if (uffd_ < 0) huge_ = false;
  }
  // Huge pages asked for but not to be had: where the caller lets us choose, copy, which beats twin
  // on 4 KiB shmem pages here (bench_emul).
  if (options_.huge_pages && !huge_ && options_.fallback) layout_ = Layout::Copy;
  if (layout_ == Layout::Twin && !huge_) {
    uffd_ = userfaultfd_with(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM);
    if (uffd_ < 0) {
      if (!options_.fallback) throw std::runtime_error("this kernel has no userfaultfd minor faults on shmem (twin layout)");
      layout_ = Layout::Copy;
    }
  }
  if (layout_ == Layout::Copy) {
    if (uffd_ >= 0) close(uffd_);
    uffd_ = userfaultfd_with(0);
    if (uffd_ < 0) throw std::runtime_error("userfaultfd refused its API handshake");
  }
  try {
    layout_ == Layout::Twin ? setup_twin() : setup_copy();
    stop_fd_ = eventfd(0, EFD_CLOEXEC);
    if (stop_fd_ < 0) throw_errno("eventfd");
    handler_ = std::thread([this] { handle_faults(); });
  } catch (...) {
    release();
    throw;
  }
}

Region::~Region() {
  if (handler_.joinable()) {
    const std::uint64_t one = 1;
    if (write(stop_fd_, &one, sizeof one) != sizeof one) std::terminate();  // the handler would never end
    handler_.join();
  }
  release();
}

void Region::release() {
  for (const auto& [start, bytes] : registered_) source_.deregister_buffer({start, bytes});
  registered_.clear();
  if (app_) munmap(app_, total_bytes_);
  if (fill_) munmap(fill_, total_bytes_);
  if (staging_) munmap(staging_, granule_bytes());
  for (const int fd : {uffd_, memfd_, stop_fd_})
    if (fd >= 0) close(fd);
}

void Region::setup_twin() {
  if (huge_) {
    memfd_ = memfd_create("rmai-region", MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
    if (memfd_ < 0) {  // no hugetlbfs here: 4 KiB shmem pages, with a handshake that allows them
      huge_ = false;
      close(uffd_);
      uffd_ = userfaultfd_with(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM);
      if (uffd_ < 0) throw std::runtime_error("this kernel has no userfaultfd minor faults on shmem (twin layout)");
    }
  }
  if (memfd_ < 0) memfd_ = memfd_create("rmai-region", MFD_CLOEXEC);
  if (memfd_ < 0) throw_errno("memfd_create");
  if (ftruncate(memfd_, static_cast<off_t>(total_bytes_)) != 0) throw_errno("ftruncate of the region memfd");
  // NORESERVE: hugetlb would otherwise reserve huge pages for the whole range at mmap time, while
  // only the resident experts ever hold any.
  void* a = mmap(nullptr, total_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, memfd_, 0);
  if (a == MAP_FAILED) throw_errno("mmap of the region");
  app_ = static_cast<std::byte*>(a);
  void* f = mmap(nullptr, total_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, memfd_, 0);
  if (f == MAP_FAILED) throw_errno("mmap of the region's fill mapping");
  fill_ = static_cast<std::byte*>(f);
  // MISSING and MINOR both: with MINOR alone, a hole would be silently zero-filled (docs/reference.md).
  register_range(UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR);
  // The transport writes into the fill mapping, never into the uffd-registered one. The fill mapping
  // is not registered with the NIC as a whole: registering pins page frames, and the memfd holds
  // frames only for the granules fetched. Each granule is registered when it is fetched and
  // deregistered when it is evicted, before the hole is punched (serve_twin, evict).
}

void Region::setup_copy() {
  void* a = mmap(nullptr, total_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (a == MAP_FAILED) throw_errno("mmap of the region");
  app_ = static_cast<std::byte*>(a);
  void* s = mmap(nullptr, granule_bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (s == MAP_FAILED) throw_errno("mmap of the staging buffer");
  staging_ = static_cast<std::byte*>(s);
  register_range(UFFDIO_REGISTER_MODE_MISSING);
  register_with_source(staging_, granule_bytes());
}

void Region::register_with_source(std::byte* start, std::uint64_t bytes) {
  source_.register_buffer({start, bytes});
  registered_[start] = bytes;
}

void Region::deregister_with_source(std::byte* begin, const std::byte* end) {
  for (auto it = registered_.lower_bound(begin); it != registered_.end() && it->first < end;) {
    source_.deregister_buffer({it->first, it->second});
    it = registered_.erase(it);
  }
}

void Region::register_range(std::uint64_t mode) {
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<std::uintptr_t>(app_);
  reg.range.len = total_bytes_;
  reg.mode = mode;
  ioctl_or_throw(UFFDIO_REGISTER, &reg, "UFFDIO_REGISTER");
}

std::uint64_t Region::granule_bytes() const {
  switch (options_.granularity) {
    case Granularity::Page: return kPageSize;
    case Granularity::Batch: return std::min(options_.batch_pages * kPageSize, object_bytes_);
    case Granularity::Region:
      return options_.region_chunk > 0 ? std::min(options_.region_chunk, object_bytes_) : object_bytes_;
  }
  return kPageSize;
}

std::span<const std::byte> Region::object(std::uint32_t id) const {
  if (id >= mapped_.size()) throw std::out_of_range("object " + std::to_string(id) + " is not in the region");
  return {app(id), object_bytes_};
}

Region::Granule Region::granule_at(std::uintptr_t address) const {
  const std::uint64_t at = address - reinterpret_cast<std::uintptr_t>(app_);
  const auto object = static_cast<std::uint32_t>(at / slot_bytes_);
  const std::uint64_t in_object = at % slot_bytes_;
  const std::uint64_t page = huge_ ? kHugePageSize : kPageSize;
  if (in_object >= object_bytes_)  // the padding after an object: nothing to fetch, map zeros
    return {object, in_object / page * page, 0, page};
  const std::uint64_t g = granule_bytes();
  const std::uint64_t offset = in_object / g * g;
  const std::uint64_t bytes = std::min(g, object_bytes_ - offset);
  return {object, offset, bytes, round_up(bytes, page)};
}

void Region::evict(std::uint32_t id) {
  if (id >= mapped_.size()) throw std::out_of_range("object " + std::to_string(id) + " is not in the region");
  // After the fault in service, if any, is booked: its waker may have returned before it was.
  std::lock_guard serving(serving_);
  const std::uint64_t start = std::uint64_t(id) * slot_bytes_;
  if (layout_ == Layout::Twin) {
    // The transport's registrations pin the frames: drop them first, or the hole would free nothing.
    deregister_with_source(fill(id), fill(id) + slot_bytes_);
    // Punching the hole frees the page frames and zaps the PTEs of both mappings: the next access
    // is a MISSING fault again, and the bytes must come from the source again.
    if (fallocate(memfd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(start),
                  static_cast<off_t>(slot_bytes_)) != 0)
      throw_errno("fallocate(PUNCH_HOLE) on the region memfd");
  } else if (madvise(app_ + start, slot_bytes_, MADV_DONTNEED) != 0) {
    throw_errno("madvise(MADV_DONTNEED) on the region");
  }
  std::lock_guard lock(mutex_);
  std::fill(mapped_[id].begin(), mapped_[id].end(), false);
}

void Region::check() const {
  std::lock_guard serving(serving_);
  if (!failed_.load()) return;
  std::lock_guard lock(mutex_);
  throw TransportError(error_);
}

Counters Region::counters() const {
  std::lock_guard serving(serving_);
  std::lock_guard lock(mutex_);
  return counters_;
}

std::uint64_t Region::faults() const {
  std::lock_guard serving(serving_);
  std::lock_guard lock(mutex_);
  return counters_.faults;
}

void Region::ioctl_or_throw(unsigned long request, void* argument, const char* name) {
  if (ioctl(uffd_, request, argument) != 0) throw_errno(name);
}

void Region::handle_faults() {
  // One thread serves every fault of the region, in arrival order: faults of several threads on
  // the same granule queue up behind the first, which maps it for all of them.
  uffd_msg messages[16];
  pollfd fds[2] = {{uffd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::terminate();  // cannot happen with valid descriptors; a silent exit would hang faulters
    }
    if (fds[1].revents) return;
    const ssize_t n = read(uffd_, messages, sizeof messages);
    {
      std::lock_guard lock(mutex_);
      counters_.handler_calls += 2;  // the handler's poll and read
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      std::terminate();
    }
    for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(uffd_msg)); ++i) {
      if (messages[i].event != UFFD_EVENT_PAGEFAULT) continue;
      try {
        serve(messages[i].arg.pagefault.address);
      } catch (const std::exception& e) {
        // Even zeros could not be mapped: the faulting thread cannot be released. End the process
        // with the reason rather than hang it or die in std::terminate without one.
        std::fprintf(stderr, "rmai: failed: the region's fault handler: %s (%s)\n", e.what(), error_.c_str());
        std::_Exit(1);
      }
    }
  }
}

void Region::serve(std::uintptr_t address) {
  std::lock_guard serving(serving_);
  const auto start = std::chrono::steady_clock::now();
  const Granule g = granule_at(address & ~std::uintptr_t(kPageSize - 1));
  const std::size_t index = g.offset / granule_bytes();
  bool late = false;
  {
    std::lock_guard lock(mutex_);
    ++counters_.transitions;  // the faulting thread's trap
    late = g.offset < object_bytes_ && mapped_[g.object][index];
  }
  if (late) {
    wake(g);  // served while this fault waited in the queue
    return;
  }
  std::uint64_t fetched = 0;
  if (failed_.load() || g.offset >= object_bytes_) {
    resolve_with_zeros(g);
  } else {
    try {
      layout_ == Layout::Twin ? serve_twin(g) : serve_copy(g);
      fetched = g.bytes;
    } catch (const std::exception& e) {  // the transport's failure, or a refused ioctl
      {
        std::lock_guard lock(mutex_);
        if (error_.empty()) error_ = e.what();
      }
      failed_ = true;
      resolve_with_zeros(g);
    }
  }
  std::lock_guard lock(mutex_);
  if (g.offset < object_bytes_) mapped_[g.object][index] = true;
  ++counters_.faults;
  counters_.pages_mapped += g.map_bytes / (huge_ ? kHugePageSize : kPageSize);
  counters_.bytes_fetched += fetched;
  counters_.fault_latency_s.push_back(seconds_since(start));
}

void Region::serve_twin(const Granule& g) {
  std::byte* target = fill(g.object) + g.offset;
  // Allocating the page frames in one call instead of one kernel fault per 4 KiB page as the bytes
  // land: each fault costs ~14 us on this VM, which would cap a region near 0.3 GB/s.
  if (madvise(target, g.map_bytes, MADV_POPULATE_WRITE) != 0) throw_errno("madvise(MADV_POPULATE_WRITE) on the fill mapping");
  {
    std::lock_guard lock(mutex_);
    ++counters_.handler_calls;
  }
  // Registered until the granule is evicted: the NIC writes into these frames, then they are mapped.
  if (!registered_.count(target)) register_with_source(target, g.map_bytes);
  source_.read(g.object, g.offset, {target, g.bytes});
  uffdio_continue c{};
  c.range.start = reinterpret_cast<std::uintptr_t>(app(g.object) + g.offset);
  c.range.len = g.map_bytes;
  {
    std::lock_guard lock(mutex_);
    ++counters_.handler_calls;
  }
  if (ioctl(uffd_, UFFDIO_CONTINUE, &c) == 0) return;
  if (errno != EEXIST) throw_errno("UFFDIO_CONTINUE");
  wake(g);  // a page was mapped already: just wake the waiters
}

void Region::serve_copy(const Granule& g) {
  source_.read(g.object, g.offset, {staging_, g.bytes});
  std::uint64_t done = 0;
  while (done < g.bytes) {
    uffdio_copy c{};
    c.dst = reinterpret_cast<std::uintptr_t>(app(g.object) + g.offset + done);
    c.src = reinterpret_cast<std::uintptr_t>(staging_ + done);
    c.len = g.bytes - done;
    {
      std::lock_guard lock(mutex_);
      ++counters_.handler_calls;
    }
    if (ioctl(uffd_, UFFDIO_COPY, &c) == 0) break;
    if (errno == EEXIST) {
      wake(g);
      break;
    }
    if (errno != EAGAIN) throw_errno("UFFDIO_COPY");
    done += c.copy > 0 ? static_cast<std::uint64_t>(c.copy) : 0;  // interrupted part way: go on
  }
}

void Region::resolve_with_zeros(const Granule& g) {
  // After a transport failure the bytes cannot come; mapping zeros releases the faulting threads,
  // and check() reports the failure to whoever reads.
  if (layout_ == Layout::Twin) {
    if (madvise(fill(g.object) + g.offset, g.map_bytes, MADV_POPULATE_WRITE) != 0) {
      // Not even a zero page can be had (the hugetlb pool ran dry): nothing can release the
      // faulting thread, so end the process with the reason rather than hang or die of SIGBUS.
      std::fprintf(stderr, "rmai: failed: no page to map in the region (%s%s); %s\n", std::strerror(errno),
                   huge_ ? ", out of huge pages: try emul.layout=copy" : "", error_.c_str());
      std::_Exit(1);
    }
    std::memset(fill(g.object) + g.offset, 0, g.map_bytes);
    uffdio_continue c{};
    c.range.start = reinterpret_cast<std::uintptr_t>(app(g.object) + g.offset);
    c.range.len = g.map_bytes;
    if (ioctl(uffd_, UFFDIO_CONTINUE, &c) != 0 && errno != EEXIST) throw_errno("UFFDIO_CONTINUE");
  } else {
    uffdio_zeropage z{};
    z.range.start = reinterpret_cast<std::uintptr_t>(app(g.object) + g.offset);
    z.range.len = g.map_bytes;
    if (ioctl(uffd_, UFFDIO_ZEROPAGE, &z) != 0 && errno != EEXIST) throw_errno("UFFDIO_ZEROPAGE");
  }
  wake(g);
}

void Region::wake(const Granule& g) {
  uffdio_range r{};
  r.start = reinterpret_cast<std::uintptr_t>(app(g.object) + g.offset);
  r.len = g.map_bytes;
  {
    std::lock_guard lock(mutex_);
    ++counters_.handler_calls;
  }
  ioctl_or_throw(UFFDIO_WAKE, &r, "UFFDIO_WAKE");
}

}  // namespace rmai::emul
