#include "emul/huge_pages.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

// The record directory, created 0700 by its first user: usable only when it is a real directory
// owned by this user (/run/lock is world-writable: a directory or link planted there by someone
// else must not steer what root writes or how many pages it gives back).
bool records_usable() {
  ::mkdir(kRecords, 0700);
  struct stat info {};
  if (::lstat(kRecords, &info) != 0 || !S_ISDIR(info.st_mode) || info.st_uid != ::geteuid()) return false;
  return (info.st_mode & 0077) == 0 || ::chmod(kRecords, 0700) == 0;  // ours: make it private
}

// Gives back the pages of records whose owner is gone. Called under the lock.
void reclaim_dead_owners() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kRecords, ec)) {
    const std::string name = entry.path().filename().string();
    const auto dash = name.find('-');
    if (dash == std::string::npos || dash == 0 || name.find_first_not_of("0123456789-") != std::string::npos ||
        !entry.is_regular_file(ec))
      continue;  // not a record (a temporary being written is "name.tmp.PID")
    const long pid = std::atol(name.substr(0, dash).c_str());
    if (pid > 0 && owner_name(pid) == name) continue;  // alive
    const std::int64_t pages = read_number(entry.path().c_str());
    const std::int64_t total = read_number(kNrHugePages);
    if (pages > 0 && total >= pages) write_number(kNrHugePages, total - pages);
    std::filesystem::remove(entry.path(), ec);
  }
}

// Allocates and zeroes `pages` free huge pages once and gives them back to the pool. On a virtual
// machine the first touch of a frame the guest has not used recently makes the host back it: 1-3 ms
// per 2 MiB page here against ~0.1-0.25 ms for a frame touched before (populating a hugetlb memfd
// page by page, the second time round). Without this, a run's first few dozen switches pay it and
// its mean and tail measure the host rather than the paging path. Best effort: the pages stay
// reserved whether or not this succeeds.
void warm_huge_pages(std::uint64_t pages) {
  const int fd = ::memfd_create("rmai-warm-hugepages", MFD_HUGETLB | MFD_CLOEXEC);
  if (fd < 0) return;
  const std::size_t bytes = pages * kHugePageSize;
  if (::ftruncate(fd, static_cast<off_t>(bytes)) == 0) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      ::madvise(p, bytes, MADV_POPULATE_WRITE);
      ::munmap(p, bytes);
    }
  }
  ::close(fd);  // the last reference: the frames go back to the free pool
}

std::filesystem::path own_record() { return std::filesystem::path(kRecords) / owner_name(::getpid()); }

// Whole or not at all (a temporary renamed into place): a record cut short by SIGKILL would hide
// its pages.
bool write_record(const std::filesystem::path& record, std::int64_t pages) {
  try {
    posix::write_file_atomic(record, std::to_string(pages) + "\n");
    return true;
  } catch (const std::exception&) {
    return false;
  }
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

HugePageReservation::HugePageReservation(std::uint64_t pages) {
  PoolLock lock;
  const bool recorded = records_usable();
  if (recorded) reclaim_dead_owners();
  const std::int64_t total = recorded ? read_number(kNrHugePages) : -1;  // unrecorded pages could leak
  if (total >= 0 && write_number(kNrHugePages, total + static_cast<std::int64_t>(pages))) {
    added_ = read_number(kNrHugePages) - total;  // the kernel may find fewer free 2 MiB frames
    ok_ = added_ >= static_cast<std::int64_t>(pages);
    if (added_ > 0) {
      // Before any page is used: a record that cannot be written would leak them after a SIGKILL.
      const auto record = own_record();
      const std::int64_t before = read_number(record.c_str());  // another reservation of this process
      if (!write_record(record, std::max<std::int64_t>(before, 0) + added_)) {
        write_number(kNrHugePages, total);
        added_ = 0;
        ok_ = false;
      }
    }
    if (ok_) warm_huge_pages(pages);
    return;
  }
  ok_ = free_huge_pages() >= pages;  // not root: only what an administrator reserved
  if (ok_) warm_huge_pages(pages);
}

HugePageReservation::~HugePageReservation() {
  if (added_ <= 0) return;
  PoolLock lock;
  // The record first: killed in between, the pages leak (the next run does not know them) rather
  // than being given back twice (taking them from another run).
  const auto record = own_record();
  const std::int64_t left = read_number(record.c_str()) - added_;
  std::error_code ec;
  if (left > 0)
    write_record(record, left);
  else
    std::filesystem::remove(record, ec);
  const std::int64_t total = read_number(kNrHugePages);
  if (total >= added_) write_number(kNrHugePages, total - added_);
}

}  // namespace rmai::emul
