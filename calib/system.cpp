#include "calib/system.hpp"

#include <fcntl.h>
#include <linux/memfd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "posix/errors.hpp"

namespace rmai::calib {
using posix::throw_errno;

Mapping Mapping::anonymous(std::size_t bytes, const std::string& what) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw_errno("mmap of " + what);
  Mapping m;
  m.data_ = static_cast<std::byte*>(p);
  m.bytes_ = bytes;
  std::memset(p, 0x5a, bytes);
  return m;
}

Mapping Mapping::untouched(std::size_t bytes, const std::string& what) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw_errno("mmap of " + what);
  Mapping m;
  m.data_ = static_cast<std::byte*>(p);
  m.bytes_ = bytes;
  return m;
}

Mapping Mapping::shared(int fd, std::size_t bytes, const std::string& what) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw_errno("mmap of " + what);
  Mapping m;
  m.data_ = static_cast<std::byte*>(p);
  m.bytes_ = bytes;
  return m;
}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(data_, bytes_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Mapping::~Mapping() {
  if (data_) ::munmap(data_, bytes_);
}

Fd memfd(const std::string& name, std::size_t bytes, bool huge) {
  Fd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | (huge ? MFD_HUGETLB | MFD_HUGE_2MB : 0)));
  if (fd.get() < 0) throw_errno("memfd_create for " + name);
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) throw_errno("ftruncate of " + name);
  return fd;
}

Fd userfaultfd(std::uint64_t features) {
  // The syscall, or where that is refused, /dev/userfaultfd (as emul/region.cpp opens it).
  // Non-blocking: poll() on a blocking userfaultfd always reports an error (fs/userfaultfd.c).
  Fd fd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
  if (fd.get() < 0) {
    const Fd dev(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
    if (dev.get() >= 0) fd = Fd(::ioctl(dev.get(), USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK));
  }
  if (fd.get() < 0) throw_errno("userfaultfd");
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (::ioctl(fd.get(), UFFDIO_API, &api) != 0) throw_errno("UFFDIO_API");
  if ((api.features & features) != features) {
    errno = ENOTSUP;
    throw_errno("userfaultfd: this kernel lacks a feature the probe needs");
  }
  return fd;
}

void uffd_register(int uffd, void* start, std::size_t bytes, std::uint64_t mode) {
  uffdio_register r{};
  r.range.start = reinterpret_cast<std::uintptr_t>(start);
  r.range.len = bytes;
  r.mode = mode;
  if (::ioctl(uffd, UFFDIO_REGISTER, &r) != 0) throw_errno("UFFDIO_REGISTER");
}

void uffd_continue(int uffd, void* start, std::size_t bytes) {
  uffdio_continue c{};
  c.range.start = reinterpret_cast<std::uintptr_t>(start);
  c.range.len = bytes;
  if (::ioctl(uffd, UFFDIO_CONTINUE, &c) != 0) throw_errno("UFFDIO_CONTINUE");
}

std::uint64_t touch(const std::byte* data, std::size_t bytes, std::size_t stride) {
  std::uint64_t sum = 0;
  for (std::size_t at = 0; at < bytes; at += stride) sum += static_cast<std::uint64_t>(*(volatile const std::byte*)(data + at));
  return sum;
}

}  // namespace rmai::calib
