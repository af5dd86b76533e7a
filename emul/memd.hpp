#pragma once
// The memory server (memd): holds every object of a catalog in its own memory and lets clients read
// them one-sidedly over libfabric. Each object is its own memory region, registered for remote reads
// only, so a read that strays outside an object is refused by the provider's region check (tcp and
// verbs; see remote.hpp for shm). Clients find the regions through the control plane (control.hpp),
// which checks the shared secret first. Any number of clients may read the same objects at once.
//
// With the tcp and shm providers the target of a read must drive progress itself (docs/reference.md, "The
// emulator on this machine"), so the server runs a progress thread beside its control thread.
#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "emul/control.hpp"
#include "emul/control_server.hpp"
#include "emul/fabric.hpp"
#include "emul/objects.hpp"

namespace rmai::emul {

struct MemoryServerOptions {
  std::string provider = "tcp";  // tcp | shm | verbs
  std::string host = "127.0.0.1";  // control socket and fabric endpoint: loopback unless told otherwise
  std::uint16_t port = 0;          // control port; 0 picks one (port() says which)
  std::string secret;              // required (at least kMinSecretChars)
  unsigned generate_threads = 2;   // threads writing the objects' bytes at start (this machine has 2 cores)
  // After the progress thread sees traffic, it polls the CQ for this long before blocking again in
  // fi_cq_sread (which serves reads on every wake-up). 0: always block. Measured on this 2-core VM
  // with tcp;ofi_rxm (bench_emul, in-process server): blocking only 43 us per 4 KiB read, 2.9-3.1
  // GB/s at 8 MiB; 200 us of polling 37 us but 1.2 GB/s at queue depth 4; 2 ms 83 us and 0.55 GB/s;
  // polling only 266 us and 0.2 GB/s: a polling server takes the core the polling client needs.
  std::uint32_t spin_us = 0;
  std::ostream* log = nullptr;  // where handshakes are logged (refusals, clients); nullptr: std::cerr
  ControlServerOptions control;  // handshake limits (its secret is `secret`)
};

class MemoryServer {
 public:
  // Generates every object's bytes, registers them, binds the endpoint and the control socket and
  // starts serving. Throws InputError for a bad secret, FabricError or std::system_error otherwise.
  MemoryServer(const Catalog& catalog, MemoryServerOptions options);
  ~MemoryServer();  // stop()
  MemoryServer(const MemoryServer&) = delete;
  MemoryServer& operator=(const MemoryServer&) = delete;

  // Stops serving: closes every client's control connection and joins the threads. Thread-safe and
  // idempotent; clients see the control connection close.
  void stop();

  const Catalog& catalog() const { return catalog_; }
  const std::string& provider() const { return options_.provider; }
  std::string address() const;  // host:port of the control socket
  std::uint16_t port() const { return listener_->port(); }

  std::uint64_t clients_accepted() const { return control_server_->accepted(); }  // handshakes that succeeded
  // Wrong secret, broken or missing hello, pushed out by newer connections, server full.
  std::uint64_t clients_refused() const { return control_server_->refused(); }
  std::uint64_t clients_connected() const { return control_server_->connected(); }

 private:
  void log(const std::string& line);
  void progress_loop();

  const Catalog& catalog_;
  MemoryServerOptions options_;
  std::byte* memory_ = nullptr;  // every object, back to back (mmap)
  std::size_t mapped_bytes_ = 0;
  std::unique_ptr<Fabric> fabric_;
  std::vector<MemoryRegion> regions_;  // one per object, by id
  std::unique_ptr<ControlListener> listener_;
  std::unique_ptr<ControlServer> control_server_;
  Welcome welcome_;
  int stop_fd_ = -1;  // eventfd that wakes the control loop
  std::atomic<bool> stopping_{false};
  std::mutex stop_mutex_, log_mutex_;
  std::thread progress_, control_;
};

}  // namespace rmai::emul
