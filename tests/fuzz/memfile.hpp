#pragma once
// An in-memory file with a path (/proc/self/fd/N) for the fuzz targets: the readers take a path,
// and a memfd avoids disk writes on every one of the fuzzer's inputs.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace rmai::fuzz {

class MemFile {
 public:
  explicit MemFile(const char* name) : fd_(::memfd_create(name, 0)) {
    if (fd_ < 0) std::abort();  // not a finding in the readers: stop loudly
  }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  ~MemFile() { ::close(fd_); }

  // Replaces the content; returns the path to open (each open starts at offset 0).
  std::string write(const void* data, std::size_t size) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    const char* bytes = static_cast<const char*>(data);
    for (std::size_t done = 0; done < size;) {
      const ssize_t got = ::pwrite(fd_, bytes + done, size - done, static_cast<off_t>(done));
      if (got <= 0) std::abort();
      done += static_cast<std::size_t>(got);
    }
    return "/proc/self/fd/" + std::to_string(fd_);
  }

 private:
  int fd_;
};

}  // namespace rmai::fuzz
