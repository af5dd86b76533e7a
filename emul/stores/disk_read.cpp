// disk-read: the expert file (expert_file.hpp) opened with O_DIRECT; a switch reads the object into
// a staging buffer in host memory in pieces of read_chunk bytes, then copies it into the device
// buffer, as an offloading server reads into pinned host memory and copies that to the GPU (and as
// the simulator charges it: sim/tiers/disk_read.cpp). At queue_depth 1 that is a plain pread()
// loop, one piece at a time; above, the pieces go through one io_uring with up to queue_depth reads
// in flight. No page faults, no page cache: O_DIRECT moves the bytes from the device into the
// staging buffer, so eviction has nothing to release and every load reads the disk again.
//
// Counters: bytes_fetched = bytes read from the file; transitions = system calls on the read path
// (each pread, each io_uring_enter: a submit, a submit-and-wait or a wait); faults and pages_mapped
// 0.
#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "config/errors.hpp"
#include "emul/expert_file.hpp"
#include "emul/store.hpp"

namespace rmai::emul {
namespace {

// The most one read() or one io_uring read moves (Linux MAX_RW_COUNT = INT_MAX & PAGE_MASK); the
// kernel cuts larger requests short, so pieces are capped here rather than truncated.
constexpr std::uint64_t kMaxRead = 0x7ffff000;

// An io_uring owned for the store's lifetime.
class Ring {
 public:
  Ring(unsigned entries, const config::Values& params) {
    const int error = io_uring_queue_init(entries, &ring_, 0);
    if (error == -EINVAL)
      throw InputError(params.where("queue_depth"),
                       "io_uring refused a ring of " + std::to_string(entries) + " entries");
    if (error < 0) throw std::system_error(-error, std::generic_category(), "io_uring_queue_init");
  }
  ~Ring() { io_uring_queue_exit(&ring_); }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  io_uring* get() { return &ring_; }

 private:
  io_uring ring_{};
};

class DiskReadStore final : public ExpertStore {
 public:
  explicit DiskReadStore(const StoreContext& c) : catalog_(c.catalog) {
    const auto& params = c.experiment.tier_params;
    const double chunk = params.number("read_chunk");
    // O_DIRECT offsets and lengths must be multiples of the device's logical block size; 4 KiB is
    // one for every common device (512 B or 4 KiB sectors).
    if (chunk < double(kPageSize) || std::fmod(chunk, double(kPageSize)) != 0)
      throw InputError(params.where("read_chunk"),
                       "must be a multiple of 4 KiB in mode: emul (O_DIRECT reads)");
    read_chunk_ = std::min(static_cast<std::uint64_t>(chunk), kMaxRead);
    queue_depth_ = params.count("queue_depth");
    if (queue_depth_ > 1) {
      // One ring of queue_depth entries: at most queue_depth reads are ever queued, so the ring
      // never runs out of submission entries, nor of completion entries (twice as many).
      if (queue_depth_ > std::numeric_limits<unsigned>::max())
        throw InputError(params.where("queue_depth"), "too large for io_uring");
      ring_ = std::make_unique<Ring>(static_cast<unsigned>(queue_depth_), params);
    }
    // Last: a bad parameter fails before the file is written.
    file_ = std::make_unique<ExpertFile>(c.catalog, scratch_dir_of(c));
  }

  void load(std::uint32_t object, std::span<std::byte> device) override {
    const ObjectInfo& info = catalog_.object(object);
    if (device.size() != info.bytes)
      throw std::invalid_argument("disk-read: the device buffer is not object-sized");
    Staging staging = take_staging();
    const std::span<std::byte> host{staging.get(), info.bytes};
    Counters c;
    try {
      if (ring_)
        read_ring(file_->offset(object), host, c);
      else
        read_sync(file_->offset(object), host, c);
    } catch (...) {
      add(c);
      give_back(std::move(staging));
      throw;
    }
    add(c);
    std::memcpy(device.data(), host.data(), host.size());
    give_back(std::move(staging));
  }

  // O_DIRECT reads bypass the page cache: there is no local copy to release.
  void evict(std::uint32_t /*object*/) override {}

  Counters counters() const override {
    std::lock_guard lock(mutex_);
    return counters_;
  }

  std::string describe() const override {
    return std::string(ring_ ? "O_DIRECT io_uring, queue depth " + std::to_string(queue_depth_)
                             : "O_DIRECT pread") +
           ", " + std::to_string(read_chunk_ / 1024) + " KiB reads";
  }

 private:
  // One object-sized staging buffer per load in progress (touched_page_buffer: page-aligned, as
  // O_DIRECT needs), kept for the next: a fresh one would pay its page faults inside the switch.
  using Staging = PageBuffer;

  Staging take_staging() {
    {
      std::lock_guard lock(mutex_);
      if (!staging_.empty()) {
        Staging s = std::move(staging_.back());
        staging_.pop_back();
        return s;
      }
    }
    return touched_page_buffer(catalog_.object_bytes());
  }
  void give_back(Staging s) {
    std::lock_guard lock(mutex_);
    staging_.push_back(std::move(s));
  }

  void add(const Counters& c) {
    std::lock_guard lock(mutex_);
    counters_ += c;
  }

  [[noreturn]] void read_failed(int error, std::uint64_t at) const {
    const std::string where =
        file_->path().string() + ": O_DIRECT read at offset " + std::to_string(at);
    if (error == 0) throw std::runtime_error(where + ": unexpected end of file");
    throw std::system_error(error, std::generic_category(), where);
  }

  // Queue depth 1: one pread per piece, the next issued when the previous one has returned.
  void read_sync(std::uint64_t offset, std::span<std::byte> out, Counters& c) const {
    for (std::uint64_t done = 0; done < out.size();) {
      const std::uint64_t want = std::min<std::uint64_t>(read_chunk_, out.size() - done);
      const ssize_t n =
          pread(file_->direct_fd(), out.data() + done, want, static_cast<off_t>(offset + done));
      ++c.transitions;
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) read_failed(n < 0 ? errno : 0, offset + done);
      done += static_cast<std::uint64_t>(n);  // a short read: the rest is the next piece
      c.bytes_fetched += static_cast<std::uint64_t>(n);
    }
  }

  // Queue depth > 1: the pieces go through the ring, queue_depth in flight. Every pass over the
  // loop enters the kernel at most once: to submit what was queued and wait for one completion
  // together, or only to wait when nothing is queued and no completion is ready yet.
  void read_ring(std::uint64_t offset, std::span<std::byte> out, Counters& c) {
    struct Piece {
      std::uint64_t at, bytes;  // within the object: what is still to read of this piece
    };
    std::vector<Piece> pieces;
    for (std::uint64_t at = 0; at < out.size(); at += read_chunk_)
      pieces.push_back({at, std::min<std::uint64_t>(read_chunk_, out.size() - at)});
    std::vector<std::size_t> todo(pieces.size());  // indices into pieces, taken from the back
    for (std::size_t i = 0; i < todo.size(); ++i) todo[i] = todo.size() - 1 - i;

    std::lock_guard lock(ring_mutex_);  // one ring: concurrent loads take turns
    io_uring* ring = ring_->get();
    std::uint64_t in_flight = 0;
    int error = -1;  // the first failure (an errno, 0 for end of file), -1 for none
    std::uint64_t error_at = 0;
    for (;;) {
      // After a failure nothing more is queued, but the reads in flight still write into `out`:
      // they are waited for before throwing.
      while (error < 0 && in_flight < queue_depth_ && !todo.empty()) {
        const Piece& p = pieces[todo.back()];
        io_uring_sqe* sqe = io_uring_get_sqe(ring);  // never null: in_flight < the ring's entries
        io_uring_prep_read(sqe, file_->direct_fd(), out.data() + p.at,
                           static_cast<unsigned>(p.bytes), offset + p.at);
        io_uring_sqe_set_data64(sqe, todo.back());
        todo.pop_back();
        ++in_flight;
      }
      if (in_flight == 0) break;
      if (io_uring_sq_ready(ring) > 0 || io_uring_cq_ready(ring) == 0) {
        io_uring_cqe* ignored = nullptr;
        const int r = io_uring_sq_ready(ring) > 0 ? io_uring_submit_and_wait(ring, 1)
                                                  : io_uring_wait_cqe(ring, &ignored);
        ++c.transitions;
        // EINTR, EAGAIN, EBUSY: nothing lost, the next pass enters again. Anything else leaves
        // reads in flight into the caller's buffer with no way to wait for them: unsafe to return.
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
          std::fprintf(stderr, "disk-read: io_uring_enter failed with reads in flight: %s\n",
                       std::strerror(-r));
          std::abort();
        }
      }
      io_uring_cqe* cqe = nullptr;
      while (io_uring_peek_cqe(ring, &cqe) == 0) {
        const std::size_t i = io_uring_cqe_get_data64(cqe);
        const int res = cqe->res;
        io_uring_cqe_seen(ring, cqe);
        --in_flight;
        Piece& p = pieces[i];
        if (res <= 0) {
          if (error < 0) {
            error = -res;
            error_at = offset + p.at;
          }
          continue;
        }
        c.bytes_fetched += static_cast<std::uint64_t>(res);
        p.at += static_cast<std::uint64_t>(res);
        p.bytes -= static_cast<std::uint64_t>(res);
        if (p.bytes > 0) todo.push_back(i);  // a short read: the rest goes again, next
      }
    }
    if (error >= 0) read_failed(error, error_at);
  }

  const Catalog& catalog_;
  std::uint64_t read_chunk_ = 0;
  std::uint64_t queue_depth_ = 1;
  std::unique_ptr<Ring> ring_;  // queue depth > 1 only
  std::mutex ring_mutex_;
  std::unique_ptr<ExpertFile> file_;
  mutable std::mutex mutex_;  // guards counters_ and staging_
  Counters counters_;
  std::vector<Staging> staging_;
};

RMAI_REGISTER(
    StoreRegistry, "disk-read",
    "expert file read with O_DIRECT into host memory, then copied into the device buffer: pread at queue depth 1, io_uring above",
    [](const StoreContext& c) { return std::make_unique<DiskReadStore>(c); });

}  // namespace
}  // namespace rmai::emul
