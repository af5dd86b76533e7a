#include "emul/memd.hpp"

#include <poll.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <chrono>
#include <iostream>
#include <system_error>

#include "config/errors.hpp"
#include "posix/errors.hpp"

namespace rmai::emul {
namespace {

using Clock = std::chrono::steady_clock;

// How long the progress thread blocks in fi_cq_sread at a time: wakes on traffic anyway (the CQ's
// wait fd), so this only bounds how late it notices stop() if fi_cq_signal were lost.
constexpr int kBlockMs = 100;
// Without a wait object (shm) the progress thread sleeps this long between polls when idle. Sleeps
// here are paid in scheduler latency (tens of us on this VM), which is the cost of not spinning.
constexpr auto kIdleSleep = std::chrono::microseconds(20);
// Objects' keys are id + kKeyBase when the provider lets us choose them (keys must be unique in a
// domain; starting above 0 keeps a zeroed key from ever naming an object).
constexpr std::uint64_t kKeyBase = 1;

bool is_wildcard(const std::string& host) { return host.empty() || host == "0.0.0.0" || host == "::"; }

// Voluntary context switches of the calling thread: each one is a wake-up from blocking, so more
// than one during a timed fi_cq_sread means traffic woke it (the timeout itself accounts for one).
long voluntary_switches() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_nvcsw;
}

}  // namespace

MemoryServer::MemoryServer(const Catalog& catalog, MemoryServerOptions options)
    : catalog_(catalog), options_(std::move(options)) {
  if (options_.secret.size() < kMinSecretChars)
    throw InputError("emul.secret_file", "memd needs a shared secret of at least " + std::to_string(kMinSecretChars) +
                                             " characters");
  fabric_ = std::make_unique<Fabric>(FabricOptions{options_.provider, is_wildcard(options_.host) ? "" : options_.host});

  // Every object back to back in one mapping, in huge pages where the kernel gives them (first
  // touch of 4 KiB pages costs ~12 us each here, docs/reference.md).
  mapped_bytes_ = std::max<std::size_t>(catalog_.total_bytes(), kPageSize);
  void* memory = ::mmap(nullptr, mapped_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (memory == MAP_FAILED)
    posix::throw_errno("memd cannot map " + std::to_string(mapped_bytes_) + " bytes for the objects");
  memory_ = static_cast<std::byte*>(memory);
  ::madvise(memory_, mapped_bytes_, MADV_HUGEPAGE);
  try {
    const auto& objects = catalog_.objects();
    const unsigned workers = std::max(1u, options_.generate_threads);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < workers; ++t)
      threads.emplace_back([&, t] {
        for (std::size_t i = t; i < objects.size(); i += workers)
          generate(objects[i], 0, {memory_ + i * catalog_.object_bytes(), objects[i].bytes});
      });
    for (auto& thread : threads) thread.join();

    welcome_.provider = options_.provider;
    welcome_.fabric_address = fabric_->address();
    welcome_.catalog = catalog_.spec();
    welcome_.object_bytes = catalog_.object_bytes();
    regions_.reserve(objects.size());
    for (const auto& o : objects) {
      // Remote reads only: no local access flags, nothing writable from outside.
      regions_.push_back(fabric_->register_memory(memory_ + std::uint64_t(o.id) * catalog_.object_bytes(), o.bytes,
                                                  FI_REMOTE_READ, o.id + kKeyBase));
      welcome_.objects.push_back({o.id, regions_.back().remote_base(), o.bytes, regions_.back().key()});
    }
    listener_ = std::make_unique<ControlListener>(options_.host, options_.port);
    options_.control.secret = options_.secret;
    control_server_ = std::make_unique<ControlServer>(*listener_, welcome_, options_.control,
                                                      [this](const std::string& line) { log(line); });
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) posix::throw_errno("eventfd");
    progress_ = std::thread([this] { progress_loop(); });
    control_ = std::thread([this] { control_server_->serve(stop_fd_); });
  } catch (...) {
    if (progress_.joinable()) stop();  // the progress thread uses the fabric: end it first
    regions_.clear();
    fabric_.reset();
    ::munmap(memory_, mapped_bytes_);
    if (stop_fd_ >= 0) ::close(stop_fd_);
    throw;
  }
}

MemoryServer::~MemoryServer() {
  stop();
  regions_.clear();  // before the domain they belong to
  fabric_.reset();
  ::munmap(memory_, mapped_bytes_);
  ::close(stop_fd_);
}

void MemoryServer::stop() {
  std::lock_guard lock(stop_mutex_);
  stopping_ = true;
  // Wakes fi_cq_sread. Only CQs with a wait object have one to signal (shm's crashes on it).
  if (fabric_ && fabric_->wait_fd() >= 0) fi_cq_signal(fabric_->cq());
  const std::uint64_t one = 1;
  if (::write(stop_fd_, &one, sizeof one) < 0) {
    // The eventfd cannot be full (one write per stop); nothing else can fail here.
  }
  if (progress_.joinable()) progress_.join();
  if (control_.joinable()) control_.join();
}

std::string MemoryServer::address() const {
  const std::string& host = listener_->host();
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(listener_->port());
}

void MemoryServer::log(const std::string& line) {
  std::lock_guard lock(log_mutex_);
  std::ostream& out = options_.log ? *options_.log : std::cerr;
  out << "rmai memd: " << line << std::endl;
}

void MemoryServer::progress_loop() {
  fid_cq* cq = fabric_->cq();
  fi_cq_entry entries[16];
  const auto spin = std::chrono::microseconds(options_.spin_us);
  auto spin_until = Clock::now() + spin;
  long switches = voluntary_switches();
  const auto drain_error = [&](ssize_t rc) {
    // The target of one-sided reads gets no completions; an error here is a provider event
    // (e.g. a connection torn down after a client's out-of-bounds read). Read it to clear it.
    if (rc == -FI_EAVAIL) {
      fi_cq_err_entry error{};
      fi_cq_readerr(cq, &error, 0);
    }
  };
  while (!stopping_) {
    drain_error(fi_cq_read(cq, entries, std::size(entries)));  // drives progress
    if (Clock::now() < spin_until) continue;
    if (fabric_->wait_fd() >= 0) {
      // Blocks until traffic or the timeout, serving reads (progress) on every wake-up inside.
      drain_error(fi_cq_sread(cq, entries, std::size(entries), nullptr, kBlockMs));
      const long now_switches = voluntary_switches();
      if (now_switches - switches > 1) spin_until = Clock::now() + spin;
      switches = now_switches;
    } else {
      std::this_thread::sleep_for(kIdleSleep);
    }
  }
}

}  // namespace rmai::emul
