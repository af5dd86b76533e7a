#include "huge_pages.hpp"

#include <fstream>
#include <string>

namespace rmai::emul {
namespace {

const char* const kNrHugePages = "/proc/sys/vm/nr_hugepages";

std::int64_t read_number(const char* path) {
  std::ifstream in(path);
  std::int64_t value = -1;
  in >> value;
  return in ? value : -1;
}

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

HugePageReservation::HugePageReservation(std::uint64_t pages) {
  const std::uint64_t free = free_huge_pages();
  if (free >= pages) {
    ok_ = true;
    return;
  }
  const std::int64_t total = read_number(kNrHugePages);
  if (total < 0) return;
  const std::int64_t wanted = total + static_cast<std::int64_t>(pages - free);
  if (!write_number(kNrHugePages, wanted)) return;  // not root: the caller uses 4 KiB pages
  restore_to_ = total;
  ok_ = free_huge_pages() >= pages;  // the kernel may find fewer free 2 MiB frames than asked
}

HugePageReservation::~HugePageReservation() {
  if (restore_to_ >= 0) write_number(kNrHugePages, restore_to_);
}

}  // namespace rmai::emul
