#pragma once
// The disk tiers' expert file: every object of a catalog written once into a scratch file, object
// `id` at offset id * stride (see the constructor), then flushed and dropped from the page cache so that the first
// read of each object goes to the device. The file lives on a real disk file system
// (emul.scratch_dir, default /var/tmp): tmpfs would keep the "disk" in memory, and O_DIRECT needs a
// block device.
//
// The file is unlinked as soon as it is created and opened: it is reached through its descriptors
// only, so a crashed or killed run leaves nothing behind in the scratch directory (an emulated
// Mixtral at the default scale is a 1.4 GB file), and the destructor's close releases the space.
#include <cstdint>
#include <filesystem>

#include "emul/objects.hpp"
#include "emul/store.hpp"

namespace rmai::emul {

class ExpertFile {
 public:
  // Writes the catalog's objects into a fresh file in `dir`, fsyncs it and drops its pages from the
  // page cache. Throws InputError (key emul.scratch_dir) when `dir` is missing, is not a directory,
  // is tmpfs or ramfs, or refuses O_DIRECT; std::system_error naming the file for any other failure
  // (ENOSPC, EACCES, EIO). No half-written file survives a failure.
  // `gap`: bytes of hole left after each object (the stride rounded up to 2 MiB folios), so that
  // readahead around one object's faults reads no other object's bytes: a hole is read as zeros
  // without touching the device. 0 packs the objects back to back.
  ExpertFile(const Catalog& catalog, const std::filesystem::path& dir, std::uint64_t gap = 0);
  ~ExpertFile();
  ExpertFile(const ExpertFile&) = delete;
  ExpertFile& operator=(const ExpertFile&) = delete;

  // The name the file was created under (for messages: it is already unlinked).
  const std::filesystem::path& path() const { return path_; }
  int fd() const { return fd_; }                // read-write, through the page cache
  int direct_fd() const { return direct_fd_; }  // read-only, O_DIRECT
  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t offset(std::uint32_t object) const { return std::uint64_t(object) * stride_; }

  // Drops the clean, unmapped page-cache pages of [offset, offset + bytes) (posix_fadvise
  // POSIX_FADV_DONTNEED): the next buffered or mapped read of them goes to the device again. The
  // page cache drops large folios only whole, so the range is widened to 2 MiB boundaries: unmapped
  // pages of the neighbouring objects within them go too (they only cost a re-read). Pages still
  // mapped somewhere, and folios across the ends that are, stay.
  void drop(std::uint64_t offset, std::uint64_t bytes) const;
  // Bytes of [offset, offset + bytes) now in the page cache (mincore on a temporary mapping).
  // offset must be a multiple of kPageSize.
  std::uint64_t resident_bytes(std::uint64_t offset, std::uint64_t bytes) const;

 private:
  void write_objects(const Catalog& catalog);

  std::filesystem::path path_;
  int fd_ = -1;
  int direct_fd_ = -1;
  std::uint64_t object_bytes_ = 0;
  std::uint64_t stride_ = 0;  // from one object's start to the next's
  std::uint64_t bytes_ = 0;   // the file's length
};

// Bytes of the pages of [address, address + bytes) that are resident (mincore: for a file mapping,
// whether the page is in the page cache, mapped here or not). address must be page-aligned.
std::uint64_t resident_bytes(const void* address, std::uint64_t bytes);

// The directory of the disk tiers' expert file: the context's, else the experiment's
// emul.scratch_dir.
std::filesystem::path scratch_dir_of(const StoreContext& context);

}  // namespace rmai::emul
