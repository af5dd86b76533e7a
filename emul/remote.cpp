#include "emul/remote.hpp"

#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include <algorithm>
#include <chrono>

#include "config/errors.hpp"
#include "posix/deadline.hpp"

namespace rmai::emul {
namespace {

using Clock = std::chrono::steady_clock;

// How often the busy-poll loop looks at the control connection (one poll() syscall, ~1 us here):
// a dead server is noticed within this, far below any timeout.
constexpr auto kGoneCheckEvery = std::chrono::milliseconds(1);
// After an error completion, how long to wait for the control connection to close before calling
// it a refusal rather than the server's death: a killed server's sockets close together, but the
// fabric's error may be read a moment before the control socket's EOF.
constexpr double kGoneGraceS = 0.05;
// After a failure, how long to wait for reads still in flight before closing the endpoint (fail()).
constexpr double kDrainS = 0.5;
// The first read of a new endpoint also sets up its connection (ofi_rxm connects on first use):
// tens of ms with tcp here, but over rdma_cm on SoftRoCE under QEMU TCG more than 2 s was seen on
// a loaded machine. It may take this long, or emul.timeout if that is longer.
constexpr double kFirstReadS = 30;

std::string range_text(std::uint64_t offset, std::uint64_t bytes) {
  return "bytes [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) + ")";
}

}  // namespace

// The fabric side of the client, dropped whole after a failed read. Member order matters: the
// registrations are closed before the domain they belong to.
struct RemoteSource::Endpoint {
  explicit Endpoint(const FabricOptions& options) : fabric(options) {}
  Fabric fabric;
  fi_addr_t server = FI_ADDR_NOTAVAIL;
  std::map<const std::byte*, MemoryRegion> buffers;  // RemoteSource::buffers_ registered (FI_MR_LOCAL only)
  MemoryRegion temporary;  // the destination of the current read, when it is in no buffer
  // Keys of this client's registrations: unique in its domain, which holds nothing else.
  std::uint64_t next_key = 1;
  bool connected = false;  // a read completed: the provider's connection is up

  // The registration holding [data, data + size), or null.
  const MemoryRegion* buffer_holding(const std::byte* data, std::size_t size) const {
    auto it = buffers.upper_bound(data);
    if (it == buffers.begin()) return nullptr;
    --it;
    return it->second.contains(data, size) ? &it->second : nullptr;
  }
};

RemoteSource::RemoteSource(const Catalog& catalog, RemoteOptions options)
    : catalog_(catalog), options_(std::move(options)) {
  if (options_.read_size == 0) throw InputError("read_size", "must be at least 1 byte");
  if (options_.queue_depth == 0) throw InputError("queue_depth", "must be at least 1");
  if (!(options_.timeout_s > 0)) throw InputError("emul.timeout", "must be positive");
  control_ = std::make_unique<ControlClient>(options_.server, options_.secret, options_.timeout_s);
  const Welcome& welcome = control_->welcome();
  if (welcome.provider != options_.provider)
    throw InputError("emul.provider", "memd at " + options_.server + " serves via " + welcome.provider +
                                          " but this run uses " + options_.provider);
  check_catalog(welcome, catalog_, options_.server);
  std::lock_guard lock(mutex_);
  connect();
  // One page now, not counted: connecting takes tens of ms with tcp;ofi_rxm (measured), which would
  // otherwise land on the first fault; and it proves the keys work before anything depends on them.
  if (!catalog_.objects().empty()) {
    std::vector<std::byte> page(std::min(kPageSize, catalog_.object_bytes()));
    transfer(0, 0, page, false);
  }
}

RemoteSource::~RemoteSource() {
  endpoint_.reset();
  control_.reset();
}

void RemoteSource::connect() {
  // tcp and verbs bind where the control connection leaves from, so a loopback server gets a
  // loopback client (the provider would otherwise pick the first interface).
  FabricOptions fabric_options{options_.provider, options_.provider == "shm" ? "" : control_->local_ip()};
  auto endpoint = std::make_unique<Endpoint>(fabric_options);
  endpoint->server = endpoint->fabric.insert(control_->welcome().fabric_address);
  registrations_.needed = endpoint->fabric.needs_local_desc();
  if (registrations_.needed)
    for (const auto& [start, buffer] : buffers_) endpoint->buffers.emplace(start, register_timed(*endpoint, buffer));
  endpoint_ = std::move(endpoint);
}

MemoryRegion RemoteSource::register_timed(Endpoint& e, std::span<std::byte> buffer) {
  const auto start = Clock::now();
  MemoryRegion region = e.fabric.register_memory(buffer.data(), buffer.size(), FI_READ, e.next_key++);
  registrations_.register_s += std::chrono::duration<double>(Clock::now() - start).count();
  ++registrations_.registered;
  registrations_.bytes += buffer.size();
  return region;
}

void RemoteSource::deregister_timed(MemoryRegion& region) {
  const auto start = Clock::now();
  region = MemoryRegion();
  registrations_.deregister_s += std::chrono::duration<double>(Clock::now() - start).count();
  ++registrations_.deregistered;
}

void RemoteSource::register_buffer(std::span<std::byte> buffer) {
  std::lock_guard lock(mutex_);
  // Registered before it is recorded: a refused registration (e.g. the locked-memory limit) must not
  // leave a buffer that the next endpoint would register behind its owner's back.
  if (endpoint_ && registrations_.needed) endpoint_->buffers[buffer.data()] = register_timed(*endpoint_, buffer);
  buffers_[buffer.data()] = buffer;
}

void RemoteSource::deregister_buffer(std::span<std::byte> buffer) {
  std::lock_guard lock(mutex_);
  buffers_.erase(buffer.data());
  if (!endpoint_) return;
  const auto it = endpoint_->buffers.find(buffer.data());
  if (it == endpoint_->buffers.end()) return;
  deregister_timed(it->second);
  endpoint_->buffers.erase(it);
}

metrics::Registrations RemoteSource::registrations() const {
  std::lock_guard lock(mutex_);
  return registrations_;
}

void RemoteSource::read(std::uint32_t object, std::uint64_t offset, std::span<std::byte> dst) {
  if (object >= catalog_.objects().size())
    throw TransportError("read of object " + std::to_string(object) + ": the catalog has " +
                         std::to_string(catalog_.objects().size()) + " objects");
  const std::uint64_t bytes = catalog_.object(object).bytes;
  if (offset > bytes || dst.size() > bytes - offset)
    throw TransportError("read of " + range_text(offset, dst.size()) + " is outside object " + std::to_string(object) +
                         " (" + std::to_string(bytes) + " bytes)");
  std::lock_guard lock(mutex_);
  transfer(object, offset, dst, true);
}

void RemoteSource::read_unchecked(std::uint32_t object, std::uint64_t offset, std::span<std::byte> dst) {
  if (object >= catalog_.objects().size()) throw TransportError("no object " + std::to_string(object));
  std::lock_guard lock(mutex_);
  transfer(object, offset, dst, true);
}

std::string RemoteSource::describe() const {
  return "memd at " + options_.server + " via " + options_.provider + " (reads of " +
         std::to_string(options_.read_size) + " bytes, " + std::to_string(options_.queue_depth) + " in flight)";
}

void RemoteSource::fail(const std::string& what, std::uint32_t object) {
  if (endpoint_ && in_flight_ > 0) {
    // Let reads still in flight finish (or fail) before closing: closing a tcp;ofi_rxm endpoint
    // whose peer just died, with reads outstanding, crashes inside libfabric 1.17 (seen under load
    // in the SIGKILL test). A dead peer's reads fail within a progress call or two; a frozen one's
    // never do, and the endpoint is closed after kDrainS anyway.
    fid_cq* cq = endpoint_->fabric.cq();
    const auto deadline = posix::deadline_after(kDrainS);
    fi_cq_entry entries[64];
    while (in_flight_ > 0 && Clock::now() < deadline) {
      const ssize_t n = fi_cq_read(cq, entries, std::size(entries));
      if (n > 0) {
        in_flight_ -= std::min<std::uint32_t>(in_flight_, static_cast<std::uint32_t>(n));
      } else if (n == -FI_EAVAIL) {
        fi_cq_err_entry error{};
        fi_cq_readerr(cq, &error, 0);
        --in_flight_;
      } else if (n != -FI_EAGAIN) {
        break;
      }
    }
  }
  in_flight_ = 0;
  if (endpoint_) {  // its registrations close with it; the next endpoint registers the buffers again
    const auto start = Clock::now();
    const std::size_t closing = endpoint_->buffers.size() + (endpoint_->temporary.data() ? 1 : 0);
    endpoint_.reset();  // closes the endpoint: nothing still in flight can land after we return
    registrations_.deregister_s += std::chrono::duration<double>(Clock::now() - start).count();
    registrations_.deregistered += closing;
  }
  if (control_->server_gone() || control_->wait_gone(kGoneGraceS)) {
    gone_ = true;
    throw TransportError("memd at " + options_.server + " is gone (control connection closed) while reading object " +
                         std::to_string(object));
  }
  throw TransportError(what);
}

void RemoteSource::transfer(std::uint32_t object, std::uint64_t offset, std::span<std::byte> dst, bool count) {
  if (gone_)
    throw TransportError("memd at " + options_.server + " is gone (control connection closed); cannot read object " +
                         std::to_string(object));
  if (!endpoint_) {
    try {
      connect();
    } catch (const FabricError& e) {
      fail("memd at " + options_.server + ": cannot re-create the endpoint: " + e.what(), object);
    }
    ++reconnects_;
  }
  // A read that completes in a few us (shm) would never reach the check in the poll loop below.
  if (Clock::now() >= next_gone_check_) {
    next_gone_check_ = Clock::now() + kGoneCheckEvery;
    if (control_->server_gone()) fail("", object);
  }
  if (dst.empty()) return;
  Endpoint& e = *endpoint_;
  const ServedObject& served = control_->welcome().objects[object];

  // The local descriptor, where the provider wants one.
  void* desc = nullptr;
  if (registrations_.needed) {
    if (const MemoryRegion* held = e.buffer_holding(dst.data(), dst.size())) {
      desc = held->desc();
    } else {
      e.temporary = register_timed(e, dst);
      desc = e.temporary.desc();
    }
  }

  const std::uint64_t piece = options_.read_size;
  const std::uint64_t pieces = (dst.size() + piece - 1) / piece;
  const std::uint32_t depth = static_cast<std::uint32_t>(std::min<std::uint64_t>(options_.queue_depth, pieces));
  // One context per slot in flight; a completion's context says which slot (and so which piece) it was.
  std::vector<fi_context2> contexts(depth);
  std::vector<std::uint64_t> slot_piece(depth);
  std::vector<std::uint32_t> free_slots(depth);
  for (std::uint32_t s = 0; s < depth; ++s) free_slots[s] = depth - 1 - s;
  fi_cq_entry entries[64];
  fid_cq* cq = e.fabric.cq();
  const double timeout_s = e.connected ? options_.timeout_s : std::max(options_.timeout_s, kFirstReadS);
  const auto timeout = posix::duration_of(timeout_s);
  auto last_progress = Clock::now();
  const auto where = [&](std::uint64_t p) {
    const std::uint64_t start = offset + p * piece;
    return "object " + std::to_string(object) + " " + range_text(start, std::min<std::uint64_t>(piece, dst.size() - p * piece));
  };

  // Reads completions; returns how many slots were freed. Throws (via fail) on an error completion,
  // a timeout or the server's death.
  const auto complete = [&]() -> int {
    const ssize_t n = fi_cq_read(cq, entries, std::min<std::size_t>(std::size(entries), depth));
    if (n > 0) {
      for (ssize_t i = 0; i < n; ++i)
        free_slots.push_back(static_cast<std::uint32_t>(static_cast<fi_context2*>(entries[i].op_context) - contexts.data()));
      in_flight_ -= static_cast<std::uint32_t>(n);
      last_progress = Clock::now();
      return static_cast<int>(n);
    }
    if (n == -FI_EAVAIL) {
      fi_cq_err_entry error{};
      fi_cq_readerr(cq, &error, 0);
      --in_flight_;
      char provider_text[128] = "";
      const char* detail = fi_cq_strerror(cq, error.prov_errno, error.err_data, provider_text, sizeof provider_text);
      const auto slot = static_cast<std::uint32_t>(static_cast<fi_context2*>(error.op_context) - contexts.data());
      const std::string piece_text = slot < depth ? where(slot_piece[slot]) : "object " + std::to_string(object);
      fail("memd at " + options_.server + " refused or failed the read of " + piece_text + ": " +
               fi_strerror(error.err) + " (provider: " + (detail ? detail : "?") + ")",
           object);
    }
    if (n != -FI_EAGAIN) fail("memd at " + options_.server + ": fi_cq_read: " + fi_strerror(static_cast<int>(-n)), object);
    const auto now = Clock::now();
    if (now >= next_gone_check_) {
      next_gone_check_ = now + kGoneCheckEvery;
      if (control_->server_gone()) fail("", object);
      if (now - last_progress > timeout) {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%g", timeout_s);
        fail("memd at " + options_.server + ": read of object " + std::to_string(object) + " (" +
                 range_text(offset, dst.size()) + ") timed out after " + seconds + " s",
             object);
      }
    }
    return 0;
  };

  std::uint64_t next = 0;
  while (next < pieces || free_slots.size() < depth) {
    while (next < pieces && !free_slots.empty()) {
      const std::uint32_t slot = free_slots.back();
      const std::uint64_t start = next * piece;
      const std::uint64_t length = std::min<std::uint64_t>(piece, dst.size() - start);
      const ssize_t rc = fi_read(e.fabric.endpoint(), dst.data() + start, length, desc, e.server,
                                 served.address + offset + start, served.key, &contexts[slot]);
      if (rc == -FI_EAGAIN) break;  // the provider's queue is full: complete something first
      if (rc != 0) fail("memd at " + options_.server + ": fi_read of " + where(next) + ": " + fi_strerror(static_cast<int>(-rc)), object);
      free_slots.pop_back();
      ++in_flight_;
      slot_piece[slot] = next++;
      if (count) ++reads_;
    }
    complete();
  }
  if (e.temporary.data()) deregister_timed(e.temporary);
  e.connected = true;
}

}  // namespace rmai::emul
