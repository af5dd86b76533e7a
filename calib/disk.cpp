// nvme: what the disk tiers of the emulator read from (emul.scratch_dir), as O_DIRECT sees it: reads
// at queue depth 1 of a file written for the probe, which is unlinked as soon as it is open so that
// nothing is left behind, however the calibration ends.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "calib/probes.hpp"
#include "calib/system.hpp"
#include "config/errors.hpp"
#include "posix/errors.hpp"

namespace rmai::calib {
namespace fs = std::filesystem;
namespace {
using posix::throw_errno;

constexpr std::uint64_t kKiB = 1024, kMiB = 1024 * kKiB;

// read_ahead_kb of the block device holding `dir` (its queue, or its disk's for a partition).
std::string read_ahead_of(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return "unknown";
  const fs::path device = "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
  for (const fs::path& queue : {device / "queue", device / ".." / "queue"}) {
    std::ifstream in(queue / "read_ahead_kb");
    long kib = 0;
    if (in >> kib) {
      std::error_code ec;
      const fs::path disk = fs::canonical(queue / "..", ec);
      return std::to_string(kib) + " KiB (" + (ec ? device.string() : disk.filename().string()) + ", " + (queue / "read_ahead_kb").string() + ")";
    }
  }
  return "unknown (no block device queue for " + device.string() + ")";
}

// A fresh file in `dir`, unlinked at once: one descriptor through the page cache for writing, one
// O_DIRECT for the reads.
struct ProbeFile {
  Fd buffered, direct;
  explicit ProbeFile(const fs::path& dir) {
    std::string name = (dir / "rmai-calibrate-XXXXXX").string();
    buffered = Fd(::mkostemp(name.data(), O_CLOEXEC));
    if (buffered.get() < 0) throw_errno("cannot create a file in " + dir.string());
    direct = Fd(::open(name.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
    const int error = errno;
    ::unlink(name.c_str());
    if (direct.get() < 0) {
      errno = error;
      throw_errno("cannot open " + name + " with O_DIRECT");
    }
  }
};

}  // namespace

void check_disk_dir(const fs::path& dir, const std::string& option) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) throw InputError(option, "'" + dir.string() + "': " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw InputError(option, "'" + dir.string() + "' is not a directory");
  struct statfs info {};
  if (::statfs(dir.c_str(), &info) != 0) throw InputError(option, "statfs '" + dir.string() + "': " + std::strerror(errno));
  if (info.f_type == TMPFS_MAGIC || info.f_type == RAMFS_MAGIC)
    throw InputError(option, "'" + dir.string() + "' is on tmpfs/ramfs (memory): give a directory on the disk to measure, e.g. /var/tmp");
  if (::access(dir.c_str(), W_OK) != 0) throw InputError(option, "'" + dir.string() + "' is not writable: " + std::strerror(errno));
  try {
    ProbeFile probe(dir);
  } catch (const std::system_error& e) {
    if (e.code().value() == EINVAL) throw InputError(option, "'" + dir.string() + "' refuses O_DIRECT (not a disk file system?)");
    throw InputError(option, e.what());
  }
}

DiskResults probe_disk(const Settings& s, const fs::path& dir, double dram_latency) {
  const std::uint64_t largest = 8 * kMiB;
  const std::uint64_t file_bytes = (s.quick ? 64 : 256) * kMiB;
  ProbeFile file(dir);
  s.note("nvme: writing a " + human(double(file_bytes), Unit::Bytes) + " file in " + dir.string());
  // Written with bytes that differ per block (no zero extents, nothing for a device to compress),
  // then flushed and dropped from the page cache.
  const Mapping buffer = Mapping::anonymous(largest, "the disk probe's buffer");
  for (std::uint64_t at = 0; at < file_bytes; at += largest) {
    for (std::uint64_t i = 0; i < largest; i += 8) {
      const std::uint64_t word = (at + i) * 0x9E3779B97F4A7C15ULL;
      std::memcpy(buffer.data() + i, &word, 8);
    }
    for (std::uint64_t done = 0; done < largest;) {
      const ssize_t n = ::pwrite(file.buffered.get(), buffer.data() + done, largest - done, static_cast<off_t>(at + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw_errno("write of the disk probe's file in " + dir.string());
      done += static_cast<std::uint64_t>(n);
    }
  }
  if (::fsync(file.buffered.get()) != 0) throw_errno("fsync of the disk probe's file");
  ::posix_fadvise(file.buffered.get(), 0, static_cast<off_t>(file_bytes), POSIX_FADV_DONTNEED);

  SizeSweep sweep;
  const std::vector<std::uint64_t> sizes = s.quick ? std::vector<std::uint64_t>{4 * kKiB, 64 * kKiB, kMiB, largest}
                                                   : std::vector<std::uint64_t>{4 * kKiB, 16 * kKiB, 64 * kKiB, 256 * kKiB,
                                                                                kMiB, 4 * kMiB, largest};
  const std::uint64_t budget = s.quick ? 8 * kMiB : 32 * kMiB;
  std::uint64_t state = 1;
  for (const std::uint64_t size : sizes) {
    sweep.sizes.push_back(double(size));
    const auto reads = std::clamp<std::uint64_t>(budget / size, s.quick ? 3 : 4, s.quick ? 50 : 200);
    std::vector<double> times;
    for (unsigned r = 0; r < s.repeats; ++r) {
      std::vector<double> each;
      for (std::uint64_t i = 0; i < reads; ++i) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;  // random 4 KiB-aligned offsets
        const std::uint64_t offset = (state >> 20) % ((file_bytes - size) / (4 * kKiB) + 1) * (4 * kKiB);
        const double start = now_s();
        const ssize_t n = ::pread(file.direct.get(), buffer.data(), size, static_cast<off_t>(offset));
        each.push_back(now_s() - start);
        if (n != static_cast<ssize_t>(size)) throw_errno("O_DIRECT read of the disk probe's file");
      }
      times.push_back(median(each));
    }
    sweep.times.push_back(times);
  }
  const LineFit fit = fit_medians(sweep);
  const double read4k = median(sweep.times.front());
  const std::string probe = "O_DIRECT preads at queue depth 1 of " + sizes_text(sweep.sizes) + " at random 4 KiB-aligned " +
                            "offsets of a " + human(double(file_bytes), Unit::Bytes) + " file in " + dir.string() +
                            " (written, fsynced, dropped from the page cache), median per size and repeat; fit t(size) = a "
                            "+ size / read_bandwidth: a " + human(fit.intercept, Unit::Time);
  DiskResults out;
  out.nvme.push_back({"read_bandwidth", Unit::Bandwidth, from_fit(sweep, [](const LineFit& f) { return 1 / f.slope; }, probe)});
  // The route from the drive charges the DRAM latency too (sim/cluster.cpp: nvme, dram).
  const bool fitted = fit.intercept - dram_latency > 0;
  out.nvme.push_back(
      {"read_latency", Unit::Time,
       from_fit(sweep, [dram_latency, read4k](const LineFit& f) { return f.intercept - dram_latency > 0 ? f.intercept - dram_latency : read4k; },
                probe,
                fitted ? "the fit's a minus the DRAM latency (" + human(dram_latency, Unit::Time) + ") the route also charges"
                       : "the fit's a is not above the DRAM latency: the median 4 KiB read instead")});
  struct statvfs info {};
  if (::statvfs(dir.c_str(), &info) != 0) throw_errno("statvfs " + dir.string());
  Measurement capacity;
  capacity.value = double(info.f_blocks) * double(info.f_frsize);
  capacity.probe = "statvfs of " + dir.string() + ": f_blocks x f_frsize (the file system's size)";
  out.nvme.push_back({"capacity", Unit::Bytes, capacity});
  out.read_ahead = read_ahead_of(dir);
  s.note("nvme: read_latency " + human(out.nvme[1].m.value, Unit::Time) + ", read_bandwidth " +
         human(out.nvme[0].m.value, Unit::Bandwidth) + "; read_ahead_kb " + out.read_ahead);
  return out;
}

}  // namespace rmai::calib
