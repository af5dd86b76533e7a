#include "emul/fabric.hpp"

#include <sys/resource.h>

#include <rdma/fi_cm.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_rma.h>

#include <cstdlib>
#include <cstring>
#include <utility>

#include "config/errors.hpp"

namespace rmai::emul {
namespace {

// The API version we are written against: Debian 12 ships libfabric 1.17.
constexpr std::uint32_t kApiVersion = FI_VERSION(1, 17);

void check(const char* call, int rc) {
  if (rc != 0) throw FabricError(call, rc);
}

void close_fid(fid* f) {
  if (f != nullptr) fi_close(f);
}

struct HintsDeleter {
  void operator()(fi_info* info) const { fi_freeinfo(info); }
};

// The hints every endpoint here is opened with. The provider may answer with less in mr_mode
// (what it needs), never with more.
std::unique_ptr<fi_info, HintsDeleter> hints_for(const std::string& provider) {
  // Before libfabric reads its environment (its first fi_getinfo; every one here comes through
  // this function): no registration cache. The verbs provider caches registrations by address
  // and keeps one after its fi_close; a region's eviction punches a hole in its memfd, which no
  // cache monitor sees (it watches unmaps), so the next registration of that range would hit the
  // old, still pinned page frames and the NIC would write the bytes there. Seen in the SoftRoCE
  // guest as wrong bytes and a drained huge-page pool (docs/reference.md); the class is known
  // (ofi-cray/libfabric-cray#1350: stale bytes after re-registering an address). Set whatever the
  // caller's environment says: with the cache on, the twin layout reads wrong bytes. (setenv races
  // with getenv in other threads: the first call comes from the main thread, before any is started.)
  static const bool no_cache = ::setenv("FI_MR_CACHE_MAX_COUNT", "0", 1) == 0;
  if (!no_cache) throw std::runtime_error("setenv(FI_MR_CACHE_MAX_COUNT) failed");
  std::unique_ptr<fi_info, HintsDeleter> hints(fi_allocinfo());
  if (!hints) throw std::bad_alloc();
  hints->ep_attr->type = FI_EP_RDM;
  hints->caps = FI_RMA | FI_READ | FI_REMOTE_READ;
  // Every operation context we pass is a fi_context2, so providers that borrow it may.
  hints->mode = FI_CONTEXT | FI_CONTEXT2;
  // Every registration mode Fabric honours; FI_MR_RAW (keys wider than 64 bits) is not one of them.
  hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
  // The server touches its endpoint from one thread; RemoteSource serialises with a mutex.
  hints->domain_attr->threading = FI_THREAD_DOMAIN;
  hints->fabric_attr->prov_name = strdup(provider_string(provider).c_str());
  return hints;
}

}  // namespace

FabricError::FabricError(const std::string& call, int rc)
    : std::runtime_error(call + ": " + fi_strerror(rc < 0 ? -rc : rc)), code_(rc < 0 ? -rc : rc) {}

std::string provider_string(const std::string& provider) {
  if (provider == "tcp") return "tcp;ofi_rxm";
  if (provider == "shm") return "shm";
  if (provider == "verbs") return "verbs;ofi_rxm";
  throw InputError("emul.provider", "'" + provider + "' is not a provider (tcp, shm, verbs)");
}

std::string provider_unavailable_reason(const std::string& provider) {
  auto hints = hints_for(provider);
  fi_info* info = nullptr;
  const int rc = fi_getinfo(kApiVersion, nullptr, nullptr, 0, hints.get(), &info);
  if (rc != 0) return "fi_getinfo(" + provider_string(provider) + ") found nothing: " + fi_strerror(-rc);
  fi_freeinfo(info);
  return "";
}

MemoryRegion::MemoryRegion(MemoryRegion&& other) noexcept { *this = std::move(other); }

MemoryRegion& MemoryRegion::operator=(MemoryRegion&& other) noexcept {
  if (this != &other) {
    close_fid(mr_ ? &mr_->fid : nullptr);
    mr_ = std::exchange(other.mr_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    remote_base_ = std::exchange(other.remote_base_, 0);
  }
  return *this;
}

MemoryRegion::~MemoryRegion() { close_fid(mr_ ? &mr_->fid : nullptr); }

void* MemoryRegion::desc() const { return mr_ ? fi_mr_desc(mr_) : nullptr; }

std::uint64_t MemoryRegion::key() const { return mr_ ? fi_mr_key(mr_) : 0; }

bool MemoryRegion::contains(const void* p, std::size_t n) const {
  const auto* b = static_cast<const std::byte*>(p);
  return data_ != nullptr && b >= data_ && n <= size_ && b - data_ <= static_cast<std::ptrdiff_t>(size_ - n);
}

Fabric::Fabric(const FabricOptions& options) : provider_(options.provider) {
  auto hints = hints_for(options.provider);
  fi_info* info = nullptr;
  const bool bind = !options.node.empty() && options.provider != "shm";
  const int rc = fi_getinfo(kApiVersion, bind ? options.node.c_str() : nullptr, nullptr, bind ? FI_SOURCE : 0,
                            hints.get(), &info);
  if (rc != 0)
    throw FabricError("fi_getinfo(" + provider_string(options.provider) + (bind ? " on " + options.node : "") + ")", rc);
  info_.reset(info);
  try {
    check("fi_fabric", fi_fabric(info_->fabric_attr, &fabric_, nullptr));
    check("fi_domain", fi_domain(fabric_, info_.get(), &domain_, nullptr));
    fi_cq_attr cq_attr{};
    cq_attr.format = FI_CQ_FORMAT_CONTEXT;
    // A wait fd lets the server block between bursts instead of spinning (memd.cpp); a provider
    // without one is polled.
    cq_attr.wait_obj = FI_WAIT_FD;
    if (fi_cq_open(domain_, &cq_attr, &cq_, nullptr) != 0) {
      cq_attr.wait_obj = FI_WAIT_NONE;
      check("fi_cq_open", fi_cq_open(domain_, &cq_attr, &cq_, nullptr));
    } else if (fi_control(&cq_->fid, FI_GETWAIT, &wait_fd_) != 0) {
      wait_fd_ = -1;
    }
    fi_av_attr av_attr{};
    av_attr.type = FI_AV_TABLE;
    check("fi_av_open", fi_av_open(domain_, &av_attr, &av_, nullptr));
    check("fi_endpoint", fi_endpoint(domain_, info_.get(), &ep_, nullptr));
    check("fi_ep_bind(av)", fi_ep_bind(ep_, &av_->fid, 0));
    check("fi_ep_bind(cq)", fi_ep_bind(ep_, &cq_->fid, FI_TRANSMIT | FI_RECV));
    check("fi_enable", fi_enable(ep_));
  } catch (...) {
    close();
    throw;
  }
}

Fabric::~Fabric() { close(); }

void Fabric::close() {
  close_fid(ep_ ? &ep_->fid : nullptr);
  close_fid(av_ ? &av_->fid : nullptr);
  close_fid(cq_ ? &cq_->fid : nullptr);
  close_fid(domain_ ? &domain_->fid : nullptr);
  close_fid(fabric_ ? &fabric_->fid : nullptr);
  ep_ = nullptr;
  av_ = nullptr;
  cq_ = nullptr;
  domain_ = nullptr;
  fabric_ = nullptr;
}

std::string Fabric::provider_name() const { return info_->fabric_attr->prov_name; }

bool Fabric::trywait() {
  if (wait_fd_ < 0) return false;
  fid* fids[] = {&cq_->fid};
  return fi_trywait(fabric_, fids, 1) == FI_SUCCESS;
}

std::vector<std::uint8_t> Fabric::address() const {
  std::vector<std::uint8_t> name(64);
  std::size_t length = name.size();
  int rc = fi_getname(&ep_->fid, name.data(), &length);
  if (rc == -FI_ETOOSMALL) {  // length now holds the size needed
    name.resize(length);
    rc = fi_getname(&ep_->fid, name.data(), &length);
  }
  check("fi_getname", rc);
  name.resize(length);
  return name;
}

fi_addr_t Fabric::insert(const std::vector<std::uint8_t>& address) {
  fi_addr_t out = FI_ADDR_NOTAVAIL;
  const int n = fi_av_insert(av_, address.data(), 1, &out, 0, nullptr);
  if (n != 1) throw FabricError("fi_av_insert", n < 0 ? n : -FI_EINVAL);
  return out;
}

void Fabric::remove(fi_addr_t address) { fi_av_remove(av_, &address, 1, 0); }

MemoryRegion Fabric::register_memory(void* data, std::size_t size, std::uint64_t access, std::uint64_t requested_key) {
  MemoryRegion region;
  const int rc = fi_mr_reg(domain_, data, size, access, 0, requested_key, 0, &region.mr_, nullptr);
  if (rc == -FI_ENOMEM) {
    // Registering pins the pages, which counts against RLIMIT_MEMLOCK unless the process may lock
    // memory (CAP_IPC_LOCK, e.g. root): the usual reason for a refusal on an RDMA NIC.
    rlimit limit{};
    getrlimit(RLIMIT_MEMLOCK, &limit);
    const std::string limit_text =
        limit.rlim_cur == RLIM_INFINITY
            ? "locked memory is unlimited here: the NIC or its driver is out of memory"
            : "locked-memory limit " + std::to_string(limit.rlim_cur) + " bytes; raise it with ulimit -l or memlock in limits.conf";
    throw FabricError("fi_mr_reg of " + std::to_string(size) + " bytes (" + limit_text + ")", rc);
  }
  check("fi_mr_reg", rc);
  region.data_ = static_cast<std::byte*>(data);
  region.size_ = size;
  region.remote_base_ = virt_addr() ? reinterpret_cast<std::uintptr_t>(data) : 0;
  if (info_->domain_attr->mr_mode & FI_MR_ENDPOINT) {
    check("fi_mr_bind", fi_mr_bind(region.mr_, &ep_->fid, 0));
    check("fi_mr_enable", fi_mr_enable(region.mr_));
  }
  return region;
}

}  // namespace rmai::emul
