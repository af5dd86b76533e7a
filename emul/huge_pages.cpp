#include "emul/huge_pages.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
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

// Each reservation leaves a record, named after its owner (pid and start time, so that a reused pid
// is not mistaken for the owner), holding the pages it added. A run killed with SIGKILL cannot give
// its pages back; the next reservation finds its record, sees the owner gone, and does it instead.
const char* const kRecords = "/run/lock/rmai-hugepages.d";

// The start time of process `pid` in clock ticks since boot (/proc/PID/stat, field 22); 0 if gone.
std::uint64_t start_time(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const auto end_of_name = stat.rfind(')');  // the name may hold spaces and parentheses
  if (end_of_name == std::string::npos) return 0;
  std::istringstream fields(stat.substr(end_of_name + 2));
  std::string field;
  for (int i = 3; i < 22 && fields >> field; ++i) {
  }
  std::uint64_t ticks = 0;
  fields >> ticks;
  return ticks;
}

std::string owner_name(long pid) { return std::to_string(pid) + "-" + std::to_string(start_time(pid)); }

// Gives back the pages of records whose owner is gone. Called under the lock.
void reclaim_dead_owners() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kRecords, ec)) {
    const std::string name = entry.path().filename().string();
    const auto dash = name.find('-');
    if (dash == std::string::npos) continue;
    const long pid = std::atol(name.substr(0, dash).c_str());
    if (pid > 0 && owner_name(pid) == name) continue;  // alive
    const std::int64_t pages = read_number(entry.path().c_str());
    const std::int64_t total = read_number(kNrHugePages);
    if (pages > 0 && total >= pages) write_number(kNrHugePages, total - pages);
    std::filesystem::remove(entry.path(), ec);
  }
}

std::filesystem::path own_record() { return std::filesystem::path(kRecords) / owner_name(::getpid()); }

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

HugePageReservation::HugePageReservation(std::uint64_t pages) {
  PoolLock lock;
  reclaim_dead_owners();
  const std::int64_t total = read_number(kNrHugePages);
  if (total >= 0 && write_number(kNrHugePages, total + static_cast<std::int64_t>(pages))) {
    added_ = read_number(kNrHugePages) - total;  // the kernel may find fewer free 2 MiB frames
    ok_ = added_ >= static_cast<std::int64_t>(pages);
    if (added_ > 0) {
      // Before any page is used: a record that cannot be written would leak them after a SIGKILL.
      std::error_code ec;
      std::filesystem::create_directories(kRecords, ec);
      const auto record = own_record();
      const std::int64_t before = read_number(record.c_str());  // another reservation of this process
      if (!write_number(record.c_str(), std::max<std::int64_t>(before, 0) + added_)) {
        write_number(kNrHugePages, total);
        added_ = 0;
        ok_ = false;
      }
    }
    return;
  }
  ok_ = free_huge_pages() >= pages;  // not root: only what an administrator reserved
}

HugePageReservation::~HugePageReservation() {
  if (added_ <= 0) return;
  PoolLock lock;
  const std::int64_t total = read_number(kNrHugePages);
  if (total >= added_) write_number(kNrHugePages, total - added_);
  const auto record = own_record();
  const std::int64_t left = read_number(record.c_str()) - added_;
  std::error_code ec;
  if (left > 0)
    write_number(record.c_str(), left);
  else
    std::filesystem::remove(record, ec);
}

}  // namespace rmai::emul
