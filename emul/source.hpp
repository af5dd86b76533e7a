#pragma once
// Where a region's bytes come from: a transport reading objects into local memory (memd over
// libfabric, or a local copy for tests). The region code is the same whatever the source.
#include <atomic>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "emul/objects.hpp"
#include "metrics/results.hpp"

namespace rmai::emul {

// The source failed (server gone, read refused, timeout). The message says what and where.
class TransportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ObjectSource {
 public:
  virtual ~ObjectSource() = default;
  virtual const Catalog& catalog() const = 0;
  // Local memory that reads will land in. RMA transports that need it (verbs) register it with the
  // NIC, pinning its page frames, so reads into it need no per-read registration. Buffers may not
  // overlap; any number may be registered.
  virtual void register_buffer(std::span<std::byte> buffer) { (void)buffer; }
  // Drops the registration of a buffer registered before: call it before its page frames are freed
  // (a hole punched, an unmap), or the registration would keep them pinned and later reads would
  // land in frames the memory no longer holds.
  virtual void deregister_buffer(std::span<std::byte> buffer) { (void)buffer; }
  // What registrations cost so far (zeros where the transport needs none).
  virtual metrics::Registrations registrations() const { return {}; }
  // Reads bytes [offset, offset + dst.size()) of `object` into dst, which lies in a registered buffer,
  // in pieces of at most read_size() bytes with up to queue_depth() in flight; returns when all have
  // landed. Throws TransportError; never hangs longer than the transport's timeout. Thread-safe.
  virtual void read(std::uint32_t object, std::uint64_t offset, std::span<std::byte> dst) = 0;
  // Number of reads issued (each one a request/response on the transport).
  virtual std::uint64_t reads_issued() const = 0;
  virtual std::string describe() const = 0;
};

// A source serving from a local copy generated in memory (tests, and the region path without a
// transport). read_size/queue_depth are irrelevant.
class LocalSource final : public ObjectSource {
 public:
  explicit LocalSource(const Catalog& catalog);
  const Catalog& catalog() const override { return catalog_; }
  void read(std::uint32_t object, std::uint64_t offset, std::span<std::byte> dst) override;
  std::uint64_t reads_issued() const override { return reads_; }
  std::string describe() const override { return "local"; }

 private:
  const Catalog& catalog_;
  std::vector<std::byte> bytes_;  // all objects, back to back
  std::atomic<std::uint64_t> reads_{0};
};

}  // namespace rmai::emul
