#pragma once
// Small RAII pieces the probes share: a memory mapping, a memfd, a userfaultfd.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "posix/fd.hpp"

namespace rmai::calib {

// mmap(2) of `bytes`, unmapped by the destructor. Throws std::system_error naming `what`.
class Mapping {
 public:
  Mapping() = default;
  // Anonymous private memory, every page written once (so that each has its own frame: reads of
  // untouched anonymous memory all hit the one zero page).
  static Mapping anonymous(std::size_t bytes, const std::string& what);
  // Anonymous private memory never touched: every first access faults.
  static Mapping untouched(std::size_t bytes, const std::string& what);
  // A shared mapping of `fd` (a memfd) from offset 0.
  static Mapping shared(int fd, std::size_t bytes, const std::string& what);
  Mapping(Mapping&& other) noexcept : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept;
  ~Mapping();
  std::byte* data() const { return data_; }
  std::size_t size() const { return bytes_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t bytes_ = 0;
};

using posix::Fd;

// A memfd of `bytes` (shmem, or hugetlb 2 MiB pages). Throws std::system_error.
Fd memfd(const std::string& name, std::size_t bytes, bool huge);

// A userfaultfd with `features` negotiated (UFFD_FEATURE_*), non-blocking (wait in poll()). Throws
// std::system_error when the kernel refuses it or lacks a feature.
Fd userfaultfd(std::uint64_t features);
// Registers [start, start + bytes) with `uffd` in `mode` (UFFDIO_REGISTER_MODE_*).
void uffd_register(int uffd, void* start, std::size_t bytes, std::uint64_t mode);
// UFFDIO_CONTINUE of [start, start + bytes): maps the page-cache pages there.
void uffd_continue(int uffd, void* start, std::size_t bytes);

// Reads one byte per `stride` bytes of [data, data + bytes), so that each page is touched; returns
// their sum (for the caller to keep, so the loads stay).
std::uint64_t touch(const std::byte* data, std::size_t bytes, std::size_t stride);

}  // namespace rmai::calib
