#pragma once
// The microbenchmarks of `rmai calibrate`: each measures one group of the simulator's platform
// parameters on this machine (docs/interfaces.md, "rmai calibrate"). A probe repeats its measurement
// `repeats` times; a number is the median of the repeats, or the fit of a line through the
// per-size medians (calib/fit.hpp). Every Measurement says how it was found, for the comment the
// preset carries beside it.
//
// The probes are one thread each (what one emulator thread sees), but for the dram and pcie
// bandwidths, measured also with every core at once (what concurrent loads share), and allocate a
// fixed amount of memory, at most about 1.3 GiB at once (the DRAM pool, calib/memory.cpp).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "calib/measurement.hpp"
#include "emul/objects.hpp"

namespace rmai::calib {

struct Settings {
  unsigned repeats = 5;
  bool quick = false;  // fewer sizes and samples: the whole calibration in well under 30 s
  std::function<void(const std::string&)> note = [](const std::string&) {};  // a progress line
};

// dram (read bandwidth of all cores and of one thread, pointer-chase latency) and pcie (memcpy
// into a device buffer, the emulator's stand-in for the copy to HBM, by all cores and by one), from
// one pool larger than the last-level cache.
struct MemoryResults {
  Entries dram, pcie;
};
MemoryResults probe_memory(const Settings& s);

// os: page size, syscall, trap, fault handler, PTE install, userfaultfd round trip, page-cache
// insert, eviction of a region expert, huge page size and mapping. `huge_pages` must have been
// reserved by the caller (kHugePagesNeeded of them).
inline constexpr std::uint64_t kHugePagesNeeded = 32;  // the region-fault probe's ring (calib/nic.cpp)
Entries probe_os(const Settings& s);

// The emulator's transport to a memd: where it is and how to reach it.
struct Transport {
  std::string provider;  // tcp | shm | verbs
  std::string server;    // host:port of memd's control socket
  std::string secret;
  bool local = true;     // memd is this process's child on loopback (else a memd on another machine)
};

// The catalog the memd at `t` serves. Throws InputError naming --provider when it serves another
// provider, --server when its objects are too few or too small to calibrate with, TransportError
// when it cannot be reached.
emul::Catalog served_catalog(const Transport& t);

// nic (bandwidth, latency, op_overhead, wakeup) and os.swap_in_path (a 4 KiB fault through the
// emulator's page-granularity region), which needs the os costs and the dram link (MemoryResults)
// measured first.
struct NicResults {
  Entries nic;
  Entry swap_in_path;
  Entry huge_map;        // os.huge_map from whole-region faults (replaces the direct probe's)
  std::string describe;  // the objects memd serves and the transport, for the preset's header
};
NicResults probe_nic(const Settings& s, const Transport& t, const Entries& os, const Entries& dram);

// nvme: O_DIRECT reads at queue depth 1 of a file in `dir` (unlinked at once: nothing is left behind),
// and the capacity of its file system. `read_ahead` says the device's read_ahead_kb, for a comment.
struct DiskResults {
  Entries nvme;
  std::string read_ahead;
};
DiskResults probe_disk(const Settings& s, const std::filesystem::path& dir, double dram_latency);

// Checks that `dir` can hold the disk probe's file: a directory on a disk file system (not tmpfs or
// ramfs) that allows O_DIRECT. Throws InputError naming `option`.
void check_disk_dir(const std::filesystem::path& dir, const std::string& option);

}  // namespace rmai::calib
