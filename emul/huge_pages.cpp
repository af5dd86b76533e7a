#include "emul/huge_pages.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "posix/files.hpp"

namespace rmai::emul {
namespace {

const char* const kNrHugePages = "/proc/sys/vm/nr_hugepages";

// -1 when it cannot be read.
std::int64_t read_number(const char* path) { return posix::read_number(path).value_or(-1); }

bool write_number(const char* path, std::int64_t value) {
  std::ofstream out(path);
  out << value << "\n";
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace

std::uint64_t free_huge_pages() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "HugePages_Free:") return value;
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

// Serializes changes of nr_hugepages between processes (held for the scope).
class PoolLock {
 public:
  PoolLock() : fd_(::open("/run/lock/rmai-hugepages.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~PoolLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  PoolLock(const PoolLock&) = delete;
  PoolLock& operator=(const PoolLock&) = delete;

 private:
  int fd_;
};

HugePageReservation::HugePageReservation(std::uint64_t pages) {
  PoolLock lock;
  const std::int64_t total = read_number(kNrHugePages);
  if (total >= 0 && write_number(kNrHugePages, total + static_cast<std::int64_t>(pages))) {
    added_ = read_number(kNrHugePages) - total;  // the kernel may find fewer free 2 MiB frames
    ok_ = added_ >= static_cast<std::int64_t>(pages);
    return;
  }
  ok_ = free_huge_pages() >= pages;  // not root: only what an administrator reserved
}

HugePageReservation::~HugePageReservation() {
  if (added_ <= 0) return;
  PoolLock lock;
  const std::int64_t total = read_number(kNrHugePages);
  if (total >= added_) write_number(kNrHugePages, total - added_);
}

}  // namespace rmai::emul
