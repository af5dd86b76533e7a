#pragma once
// The client of memd: an ObjectSource reading objects with one-sided libfabric reads (fi_read) into
// the caller's memory. It completes reads by busy-polling its CQ (this is the fault path: latency
// first) and watches the control connection so that a dead server is noticed at once.
//
// Failure semantics:
// - a read outside an object (read()): TransportError before anything is sent;
// - an error completion (e.g. the server refused the read) or no completion for timeout_s (for
//   the first read of a new endpoint, which also connects: at least 30 s):
//   TransportError, and the endpoint is closed (so no late completion can land anywhere) and
//   re-created at the next read. tcp;ofi_rxm tears the connection down after a refused read, so
//   without this the source would be unusable afterwards;
// - the control connection closed: TransportError "memd at H:P is gone", now and for every later read.
//
// Measured with libfabric 1.17 on this machine (tests/emul_transport_test.cpp, read_unchecked):
// tcp;ofi_rxm refuses a read past an object's region with an error completion (FI_ECANCELED)
// after a few ms and closes that client's connection; other clients are unaffected. The shm
// provider does NOT check keys or bounds of remote reads, so with shm only the client-side check in
// read() keeps reads inside objects.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <rdma/fabric.h>

#include "emul/control.hpp"
#include "emul/fabric.hpp"
#include "emul/source.hpp"

namespace rmai::emul {

struct RemoteOptions {
  std::string provider = "tcp";  // tcp | shm | verbs; must match the server's
  std::string server;            // host:port of memd's control socket
  std::string secret;
  std::uint64_t read_size = 256 << 10;  // bytes per fi_read
  std::uint32_t queue_depth = 16;       // fi_reads in flight per read()
  double timeout_s = 2;                 // a read with no completion for this long fails (a new endpoint's first: at least 30 s)
};

class RemoteSource final : public ObjectSource {
 public:
  // Connects (control handshake, then the fabric) and checks that the server serves `catalog`.
  // Throws TransportError when the server cannot be reached or refuses, InputError when its catalog
  // differs (naming the field), FabricError when the provider is not available.
  RemoteSource(const Catalog& catalog, RemoteOptions options);
  ~RemoteSource() override;

  const Catalog& catalog() const override { return catalog_; }
  // Registers the buffer with the provider once (when it needs local registrations at all: FI_MR_LOCAL),
  // and again whenever the endpoint is re-created. Reads into memory outside every registered buffer
  // still work: on such providers the destination is registered for that read alone (pins pages
  // each time), elsewhere nothing is needed.
  void register_buffer(std::span<std::byte> buffer) override;
  void deregister_buffer(std::span<std::byte> buffer) override;
  metrics::Registrations registrations() const override;
  void read(std::uint32_t object, std::uint64_t offset, std::span<std::byte> dst) override;
  // read() without the client-side bounds check, so tests can show what the server does with a read
  // outside an object. Not for anything else.
  void read_unchecked(std::uint32_t object, std::uint64_t offset, std::span<std::byte> dst);
  std::uint64_t reads_issued() const override { return reads_; }  // fi_read calls made for read()
  std::string describe() const override;

  const RemoteOptions& options() const { return options_; }
  // Times the endpoint was re-created after a failed read.
  std::uint64_t reconnects() const { return reconnects_; }

 private:
  struct Endpoint;
  void connect();
  void transfer(std::uint32_t object, std::uint64_t offset, std::span<std::byte> dst, bool count);
  // Registration with the time it takes booked in registrations_ (callers hold mutex_).
  MemoryRegion register_timed(Endpoint& e, std::span<std::byte> buffer);
  void deregister_timed(MemoryRegion& region);
  [[noreturn]] void fail(const std::string& what, std::uint32_t object);

  const Catalog& catalog_;
  RemoteOptions options_;
  std::unique_ptr<ControlClient> control_;
  std::unique_ptr<Endpoint> endpoint_;  // null after a failure, until the next read
  std::map<const std::byte*, std::span<std::byte>> buffers_;  // by start address
  metrics::Registrations registrations_;
  bool gone_ = false;
  std::uint32_t in_flight_ = 0;  // fi_reads posted and not completed (fail() drains them)
  std::chrono::steady_clock::time_point next_gone_check_{};  // when to look at the control connection again
  mutable std::mutex mutex_;
  std::atomic<std::uint64_t> reads_{0};
  std::atomic<std::uint64_t> reconnects_{0};
};

}  // namespace rmai::emul
