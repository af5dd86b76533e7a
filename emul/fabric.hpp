#pragma once
// A small RAII layer over libfabric for the memory server and its clients: one reliable datagram
// endpoint (FI_EP_RDM) with its fabric, domain, completion queue and address vector, and memory
// regions registered the way the provider asks (mr_mode). Only what one-sided reads need.
#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace rmai::emul {

// A libfabric call failed: the message names the call and carries fi_strerror's text.
class FabricError : public std::runtime_error {
 public:
  FabricError(const std::string& call, int rc);
  int code() const { return code_; }  // the positive FI_E* value

 private:
  int code_;
};

// "tcp" -> "tcp;ofi_rxm", "shm" -> "shm", "verbs" -> "verbs;ofi_rxm". Throws InputError otherwise.
std::string provider_string(const std::string& provider);

// Whether fi_getinfo finds the provider here, and if not, why (for test skips and error messages).
std::string provider_unavailable_reason(const std::string& provider);

class Fabric;

// One registered memory region. Closing it (destruction) deregisters it.
class MemoryRegion {
 public:
  MemoryRegion() = default;
  MemoryRegion(MemoryRegion&& other) noexcept;
  MemoryRegion& operator=(MemoryRegion&& other) noexcept;
  ~MemoryRegion();
  MemoryRegion(const MemoryRegion&) = delete;
  MemoryRegion& operator=(const MemoryRegion&) = delete;

  void* desc() const;          // local descriptor for reads landing here (FI_MR_LOCAL), or nullptr
  std::uint64_t key() const;   // what a peer passes as the remote key
  // What a peer passes as the remote address of byte 0: the virtual address under FI_MR_VIRT_ADDR,
  // else 0 (offsets from the region's start).
  std::uint64_t remote_base() const { return remote_base_; }
  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool contains(const void* p, std::size_t n) const;

 private:
  friend class Fabric;
  fid_mr* mr_ = nullptr;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t remote_base_ = 0;
};

struct FabricOptions {
  std::string provider = "tcp";  // tcp | shm | verbs
  // Where the endpoint binds (FI_SOURCE): an address for tcp and verbs; empty lets the provider
  // choose. shm ignores it (its addresses are names, not network addresses).
  std::string node;
};

// fabric + domain + endpoint + CQ + AV, opened in that order and closed in reverse.
class Fabric {
 public:
  explicit Fabric(const FabricOptions& options);
  ~Fabric();
  Fabric(const Fabric&) = delete;
  Fabric& operator=(const Fabric&) = delete;

  const std::string& provider() const { return provider_; }  // as given: tcp | shm | verbs
  std::string provider_name() const;                          // as libfabric reports it
  const fi_info& info() const { return *info_; }
  fid_ep* endpoint() const { return ep_; }
  fid_cq* cq() const { return cq_; }
  // The CQ's wait file descriptor (for poll()), or -1 when the provider has none.
  int wait_fd() const { return wait_fd_; }
  // Whether it is safe to block on wait_fd() now (fi_trywait): false means poll the CQ again first.
  bool trywait();

  // This endpoint's address, to hand to peers (fi_getname).
  std::vector<std::uint8_t> address() const;
  // Inserts a peer's address into the AV (fi_av_insert).
  fi_addr_t insert(const std::vector<std::uint8_t>& address);
  void remove(fi_addr_t address);

  // Registers [data, data + size) with `access` (FI_READ, FI_REMOTE_READ, ...), binding it to the
  // endpoint when the provider wants FI_MR_ENDPOINT. `requested_key` is used unless the provider
  // picks keys itself (FI_MR_PROV_KEY); it must be unique in the domain.
  MemoryRegion register_memory(void* data, std::size_t size, std::uint64_t access, std::uint64_t requested_key);

  bool needs_local_desc() const { return (info_->domain_attr->mr_mode & FI_MR_LOCAL) != 0; }
  bool virt_addr() const { return (info_->domain_attr->mr_mode & FI_MR_VIRT_ADDR) != 0; }
  std::size_t max_message() const { return info_->ep_attr->max_msg_size; }

 private:
  void close();

  struct InfoDeleter {
    void operator()(fi_info* info) const { fi_freeinfo(info); }
  };
  std::string provider_;
  std::unique_ptr<fi_info, InfoDeleter> info_;
  fid_fabric* fabric_ = nullptr;
  fid_domain* domain_ = nullptr;
  fid_cq* cq_ = nullptr;
  fid_av* av_ = nullptr;
  fid_ep* ep_ = nullptr;
  int wait_fd_ = -1;
};

}  // namespace rmai::emul
