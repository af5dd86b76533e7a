#include "emul/expert_file.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "config/errors.hpp"

namespace rmai::emul {
namespace {

// Bytes generated and written per pwrite: bounded memory at any emul.scale, and large enough that
// the ~1 us per system call here (docs/reference.md) is noise next to generating the bytes.
constexpr std::uint64_t kWriteChunk = 4ull << 20;

// The largest page-cache folio: PMD order, 2 MiB on x86-64 (MAX_PAGECACHE_ORDER,
// include/linux/pagemap.h). Readahead of ext4 files builds folios up to this size.
constexpr std::uint64_t kMaxFolioBytes = 2ull << 20;

const char* const kScratchKey = "emul.scratch_dir";

[[noreturn]] void throw_errno(int error, const std::string& what) {
  throw std::system_error(error, std::generic_category(), what);
}

// Rejects what cannot hold a disk tier's file, before anything is written.
void check_directory(const std::filesystem::path& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT)
      throw InputError(kScratchKey, "directory '" + dir.string() + "' does not exist");
    throw_errno(errno, "cannot use the scratch directory '" + dir.string() + "'");
  }
  if (!S_ISDIR(st.st_mode))
    throw InputError(kScratchKey, "'" + dir.string() + "' is not a directory");
  struct statfs fs {};
  if (statfs(dir.c_str(), &fs) != 0)
    throw_errno(errno, "statfs on the scratch directory '" + dir.string() + "'");
  // tmpfs accepts O_DIRECT since Linux 6.6, but its "disk" is memory: the disk tiers would measure
  // memcpy. ramfs pages cannot even be dropped.
  if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC)
    throw InputError(kScratchKey, "'" + dir.string() +
                                      "' is on tmpfs/ramfs (memory): the disk tiers need a "
                                      "directory on a disk file system, e.g. /var/tmp");
}

std::uint64_t stride_of(std::uint64_t object_bytes, std::uint64_t gap) {
  if (gap == 0) return object_bytes;
  return (object_bytes + gap + kMaxFolioBytes - 1) / kMaxFolioBytes * kMaxFolioBytes;
}

}  // namespace

ExpertFile::ExpertFile(const Catalog& catalog, const std::filesystem::path& dir, std::uint64_t gap)
    : object_bytes_(catalog.object_bytes()),
      stride_(stride_of(object_bytes_, gap)),
      bytes_(catalog.objects().empty() ? 0 : (catalog.objects().size() - 1) * stride_ + object_bytes_) {
  check_directory(dir);
  std::string name = (dir / "rmai-experts-XXXXXX").string();
  fd_ = mkostemp(name.data(), O_CLOEXEC);
  if (fd_ < 0) throw_errno(errno, "cannot create the expert file in '" + dir.string() + "'");
  path_ = name;
  try {
    direct_fd_ = open(name.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (direct_fd_ < 0) {
      if (errno == EINVAL)
        throw InputError(kScratchKey, "'" + dir.string() +
                                          "' refuses O_DIRECT: the disk tiers need a directory "
                                          "on a disk file system (not tmpfs, not a network share)");
      throw_errno(errno, "cannot open " + name + " with O_DIRECT");
    }
    // From here on the file has no name: see the header.
    if (unlink(name.c_str()) != 0) throw_errno(errno, "cannot unlink " + name);
    name.clear();
    write_objects(catalog);
  } catch (...) {
    if (!name.empty()) unlink(name.c_str());
    if (direct_fd_ >= 0) close(direct_fd_);
    close(fd_);  // frees the blocks of the unlinked file
    throw;
  }
}

ExpertFile::~ExpertFile() {
  close(direct_fd_);
  close(fd_);
}

void ExpertFile::write_objects(const Catalog& catalog) {
  if (bytes_ == 0) return;
  // Reserve every object's blocks first (not the gaps: they stay holes): a full disk fails here,
  // before gigabytes are written.
  for (const ObjectInfo& object : catalog.objects())
    if (const int error = posix_fallocate(fd_, static_cast<off_t>(offset(object.id)), static_cast<off_t>(object.bytes));
        error != 0)
      throw_errno(error, path_.string() + ": cannot reserve " + std::to_string(catalog.total_bytes()) +
                             " bytes for the expert file");
  std::vector<std::byte> buffer(std::min(kWriteChunk, object_bytes_));
  for (const ObjectInfo& object : catalog.objects()) {
    for (std::uint64_t done = 0; done < object.bytes;) {
      const std::span<std::byte> piece(buffer.data(),
                                       std::min<std::uint64_t>(buffer.size(), object.bytes - done));
      generate(object, done, piece);
      for (std::uint64_t written = 0; written < piece.size();) {
        const std::uint64_t at = offset(object.id) + done + written;
        const ssize_t n =
            pwrite(fd_, piece.data() + written, piece.size() - written, static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
          throw_errno(n < 0 ? errno : EIO,
                      path_.string() + ": write at offset " + std::to_string(at));
        written += static_cast<std::uint64_t>(n);
      }
      done += piece.size();
    }
  }
  // POSIX_FADV_DONTNEED drops clean pages only (dirty ones are merely queued for writeback), so the
  // bytes must be on the device first.
  if (fsync(fd_) != 0) throw_errno(errno, path_.string() + ": fsync");
  drop(0, bytes_);
}

void ExpertFile::drop(std::uint64_t offset, std::uint64_t bytes) const {
  // The kernel drops only folios that lie wholly inside the range (find_lock_entries skips the
  // others): widened to folio boundaries, the range catches the large folios across its ends.
  const std::uint64_t begin = offset / kMaxFolioBytes * kMaxFolioBytes;
  const std::uint64_t end = (offset + bytes + kMaxFolioBytes - 1) / kMaxFolioBytes * kMaxFolioBytes;
  if (const int error = posix_fadvise(fd_, static_cast<off_t>(begin),
                                      static_cast<off_t>(end - begin), POSIX_FADV_DONTNEED);
      error != 0)
    throw_errno(error, path_.string() + ": posix_fadvise(POSIX_FADV_DONTNEED)");
}

std::uint64_t ExpertFile::resident_bytes(std::uint64_t offset, std::uint64_t bytes) const {
  if (bytes == 0) return 0;
  if (offset % kPageSize != 0)
    throw std::invalid_argument("ExpertFile::resident_bytes: offset not page-aligned");
  void* map = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd_, static_cast<off_t>(offset));
  if (map == MAP_FAILED) throw_errno(errno, path_.string() + ": mmap");
  try {
    const std::uint64_t resident = emul::resident_bytes(map, bytes);
    munmap(map, bytes);
    return resident;
  } catch (...) {
    munmap(map, bytes);
    throw;
  }
}

std::uint64_t resident_bytes(const void* address, std::uint64_t bytes) {
  const std::uint64_t pages = (bytes + kPageSize - 1) / kPageSize;
  std::vector<unsigned char> in_core(pages);
  if (mincore(const_cast<void*>(address), bytes, in_core.data()) != 0)
    throw_errno(errno, "mincore");
  // Bit 0 is residency; the other bits are reserved (mincore(2)).
  const auto resident =
      std::count_if(in_core.begin(), in_core.end(), [](unsigned char c) { return (c & 1) != 0; });
  return std::min(bytes, static_cast<std::uint64_t>(resident) * kPageSize);
}

std::filesystem::path scratch_dir_of(const StoreContext& context) {
  return context.scratch_dir.empty() ? context.experiment.emul.scratch_dir
                                     : std::filesystem::path(context.scratch_dir);
}

}  // namespace rmai::emul
