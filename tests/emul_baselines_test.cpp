// The emulator's local baselines (dram, disk-read, disk-mmap) and their expert file: every load
// gives the generator's bytes, before and after an eviction and from two threads; the counters
// follow each tier's path (O_DIRECT reads, io_uring or pread; page faults that read the disk again
// after an eviction); the expert file really leaves the page cache and the scratch directory; a bad
// scratch directory or parameter is a clear error.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "cli_support.hpp"
#include "emul/emulation.hpp"
#include "config/errors.hpp"
#include "emul/expert_file.hpp"
#include "emul/store.hpp"

namespace rmai::emul {
namespace {

namespace fs = std::filesystem;

// A directory of its own under /var/tmp (a disk file system, like the default scratch_dir).
class ScratchDir {
 public:
  ScratchDir() {
    std::string name = "/var/tmp/rmai-baselines-test-XXXXXX";
    if (!mkdtemp(name.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path_ = name;
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  std::size_t entries() const {
    return static_cast<std::size_t>(
        std::distance(fs::directory_iterator(path_), fs::directory_iterator{}));
  }

 private:
  fs::path path_;
};

// Mixtral at scale 0.005 on two MoE layers: 16 objects of 430 pages (1.7 MiB); 430 pages is a whole
// number of neither 25-page (100 KiB) nor 256-page (1 MiB) reads.
spec::Experiment experiment_for(const std::string& tier, std::vector<std::string> sets = {}) {
  sets.insert(sets.begin(), {"memory.tier=" + tier, "emul.scale=0.005", "emul.layers=0-1"});
  return spec::load_experiment(testing::kQuickstart, sets);
}

// A page-aligned object-sized buffer: the stand-in for the GPU slot (O_DIRECT lands in it).
struct Device {
  explicit Device(std::uint64_t bytes)
      : bytes(static_cast<std::byte*>(std::aligned_alloc(kPageSize, bytes))), size(bytes) {
    if (!this->bytes) throw std::bad_alloc();
  }
  ~Device() { std::free(bytes); }
  std::span<std::byte> span() const { return {bytes, size}; }
  std::byte* bytes;
  std::uint64_t size;
};

struct Fixture {
  Fixture(const std::string& tier, std::vector<std::string> sets = {})
      : experiment(experiment_for(tier, std::move(sets))), catalog(catalog_of(experiment)) {}
  std::unique_ptr<ExpertStore> make(const fs::path& dir) const {
    return StoreRegistry::instance().make(experiment.tier,
                                          {experiment, catalog, nullptr, dir.string()});
  }
  spec::Experiment experiment;
  Catalog catalog;
};

// ---- the expert file ----

TEST(ExpertFile, HoldsTheGeneratorsBytesOutOfThePageCacheAndWithoutAName) {
  ScratchDir dir;
  const Fixture s("disk-read");
  const ExpertFile file(s.catalog, dir.path());
  ASSERT_EQ(s.catalog.objects().size(), 16u);
  EXPECT_EQ(file.bytes(), s.catalog.total_bytes());
  EXPECT_EQ(dir.entries(), 0u) << "the file is unlinked once open";
  EXPECT_FALSE(fs::exists(file.path()));
  EXPECT_EQ(file.path().parent_path(), dir.path());
  // Written, synced and dropped: not one page of it is cached.
  EXPECT_EQ(file.resident_bytes(0, file.bytes()), 0u);

  std::vector<std::byte> buffer(s.catalog.object_bytes());
  for (const auto& object : s.catalog.objects()) {
    ASSERT_EQ(
        pread(file.fd(), buffer.data(), buffer.size(), static_cast<off_t>(file.offset(object.id))),
        static_cast<ssize_t>(buffer.size()));
    EXPECT_EQ(first_mismatch(object, 0, buffer), std::nullopt) << "object " << object.id;
  }
  // The buffered reads cached it; drop() takes one object out again, with the large folios across
  // its ends (within 2 MiB of it), and leaves what is farther away.
  EXPECT_EQ(file.resident_bytes(0, file.bytes()), file.bytes());
  file.drop(file.offset(5), s.catalog.object_bytes());
  EXPECT_EQ(file.resident_bytes(file.offset(5), s.catalog.object_bytes()), 0u);
  EXPECT_EQ(file.resident_bytes(file.offset(8), s.catalog.object_bytes()),
            s.catalog.object_bytes());
  EXPECT_EQ(file.resident_bytes(file.offset(2), s.catalog.object_bytes()),
            s.catalog.object_bytes());
}

TEST(ExpertFile, BadDirectoriesAreInputErrorsNamingThem) {
  const Fixture s("disk-read");
  const auto message = [&](const fs::path& dir) -> std::string {
    try {
      ExpertFile file(s.catalog, dir);
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message("/nonexistent/rmai")
                .find("emul.scratch_dir: directory '/nonexistent/rmai' does not exist"),
            std::string::npos)
      << message("/nonexistent/rmai");
  EXPECT_NE(message("/etc/hostname").find("'/etc/hostname' is not a directory"), std::string::npos);
  // tmpfs takes O_DIRECT on recent kernels but is memory: refused all the same.
  if (fs::is_directory("/dev/shm")) {
    const std::string m = message("/dev/shm");
    EXPECT_NE(m.find("'/dev/shm'"), std::string::npos) << m;
    EXPECT_NE(m.find("disk file system"), std::string::npos) << m;
  }
}

TEST(ExpertFile, AFailedWriteLeavesNothingBehind) {
  // A file-size limit below the file's size makes the reservation fail (EFBIG), as a full disk
  // would (ENOSPC): the error names the file, and the directory stays empty.
  ScratchDir dir;
  const Fixture s("disk-read");
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = s.catalog.object_bytes();
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string what;
  try {
    ExpertFile file(s.catalog, dir.path());
  } catch (const std::system_error& e) {
    what = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_NE(what.find(dir.path().string() + "/rmai-experts-"), std::string::npos) << what;
  EXPECT_EQ(dir.entries(), 0u);
}

// ---- the stores ----

struct Case {
  std::string name;
  std::string tier;
  std::vector<std::string> sets;
};

class BaselineTest : public ::testing::TestWithParam<Case> {
 protected:
  ScratchDir dir_;
  Fixture setup_{GetParam().tier, GetParam().sets};
};

TEST_P(BaselineTest, LoadsGiveTheGeneratorsBytesBeforeAndAfterEviction) {
  const auto store = setup_.make(dir_.path());
  const Catalog& catalog = setup_.catalog;
  Device device(catalog.object_bytes());
  for (const std::uint32_t id : {0u, 5u, 15u, 7u, 5u}) {
    std::memset(device.bytes, 0xa5, device.size);
    store->load(id, device.span());
    EXPECT_EQ(first_mismatch(catalog.object(id), 0, device.span()), std::nullopt)
        << "object " << id;
  }
  for (const std::uint32_t id : {5u, 15u}) {
    store->evict(id);
    std::memset(device.bytes, 0x5a, device.size);
    store->load(id, device.span());
    EXPECT_EQ(first_mismatch(catalog.object(id), 0, device.span()), std::nullopt)
        << "object " << id << " again";
  }
  EXPECT_FALSE(store->describe().empty());
}

TEST_P(BaselineTest, TwoThreadsLoadingAtOnceGetTheRightBytes) {
  const auto store = setup_.make(dir_.path());
  const Catalog& catalog = setup_.catalog;
  int bad[2] = {0, 0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      Device device(catalog.object_bytes());
      for (std::uint32_t round = 0; round < 12; ++round) {
        const std::uint32_t id = (round * 3 + static_cast<std::uint32_t>(t) * 8) % 16;
        store->load(id, device.span());
        if (first_mismatch(catalog.object(id), 0, device.span())) ++bad[t];
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad[0] + bad[1], 0);
}

INSTANTIATE_TEST_SUITE_P(
    , BaselineTest,
    ::testing::Values(
        Case{"dram", "dram", {}},
        Case{"disk_read_pread",
             "disk-read",
             {"memory.disk-read.queue_depth=1", "memory.disk-read.read_chunk=100KiB"}},
        Case{"disk_read_io_uring",
             "disk-read",
             {"memory.disk-read.queue_depth=8", "memory.disk-read.read_chunk=100KiB"}},
        Case{"disk_read_preset", "disk-read", {}}, Case{"disk_mmap", "disk-mmap", {}},
        Case{"disk_mmap_no_readahead", "disk-mmap", {"memory.disk-mmap.readahead=4KiB"}}),
    [](const auto& info) { return info.param.name; });

TEST(Dram, CountsNothing) {
  const Fixture s("dram");
  const auto store = s.make("/nonexistent");  // no file: the scratch directory is not used
  Device device(s.catalog.object_bytes());
  store->load(3, device.span());
  store->evict(3);
  store->load(3, device.span());
  const Counters c = store->counters();
  EXPECT_EQ(c.faults + c.transitions + c.bytes_fetched + c.pages_mapped, 0u);
}

std::uint64_t pieces(std::uint64_t bytes, std::uint64_t chunk) {
  return (bytes + chunk - 1) / chunk;
}

TEST(DiskRead, PreadReadsEveryByteFromTheFileOnePieceAtATime) {
  ScratchDir dir;
  const Fixture s("disk-read",
                  {"memory.disk-read.queue_depth=1", "memory.disk-read.read_chunk=100KiB"});
  const auto store = s.make(dir.path());
  Device device(s.catalog.object_bytes());
  const std::uint64_t per_load = pieces(s.catalog.object_bytes(), 100 * 1024);
  ASSERT_NE(s.catalog.object_bytes() % (100 * 1024), 0u) << "the last piece should be short";
  for (const std::uint32_t id : {1u, 2u, 1u}) store->load(id, device.span());
  store->evict(1);  // nothing to release: counts nothing
  const Counters c = store->counters();
  EXPECT_EQ(c.bytes_fetched, 3 * s.catalog.object_bytes());  // O_DIRECT: the third load reads again
  EXPECT_EQ(c.transitions, 3 * per_load);                    // one pread per piece (no short reads)
  EXPECT_EQ(c.faults, 0u);
  EXPECT_EQ(c.pages_mapped, 0u);
  EXPECT_NE(store->describe().find("pread"), std::string::npos) << store->describe();
}

TEST(DiskRead, IoUringKeepsSeveralPiecesInFlight) {
  ScratchDir dir;
  const Fixture s("disk-read",
                  {"memory.disk-read.queue_depth=8", "memory.disk-read.read_chunk=100KiB"});
  const auto store = s.make(dir.path());
  Device device(s.catalog.object_bytes());
  const std::uint64_t per_load = pieces(s.catalog.object_bytes(), 100 * 1024);
  for (const std::uint32_t id : {1u, 2u, 1u}) store->load(id, device.span());
  const Counters c = store->counters();
  EXPECT_EQ(c.bytes_fetched, 3 * s.catalog.object_bytes());
  // At least one io_uring_enter per load; at most one per piece and one more per load (a last
  // wait).
  EXPECT_GE(c.transitions, 3u);
  EXPECT_LE(c.transitions, 3 * (per_load + 1));
  EXPECT_EQ(c.faults, 0u);
  EXPECT_NE(store->describe().find("io_uring, queue depth 8"), std::string::npos)
      << store->describe();
}

// O_DIRECT reads land in the store's own page-aligned staging buffer, then are copied: any device
// buffer of the object's size takes the bytes, a wrong size is refused.
TEST(DiskRead, CopiesIntoAnyDeviceBufferAndRejectsAWrongSizeAndAReadChunkOfNoWholePages) {
  ScratchDir dir;
  const Fixture s("disk-read");
  const auto store = s.make(dir.path());
  Device device(s.catalog.object_bytes() + kPageSize);
  const std::span<std::byte> misaligned{device.bytes + 512, s.catalog.object_bytes()};
  std::memset(device.bytes, 0xa5, device.size);
  store->load(3, misaligned);
  EXPECT_EQ(first_mismatch(s.catalog.object(3), 0, misaligned), std::nullopt);
  EXPECT_THROW(store->load(0, {device.bytes, s.catalog.object_bytes() - kPageSize}),
               std::invalid_argument);
  const Fixture odd("disk-read", {"memory.disk-read.read_chunk=6KiB"});
  try {
    odd.make(dir.path());
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("read_chunk"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("multiple of 4 KiB"), std::string::npos) << e.what();
  }
  EXPECT_EQ(dir.entries(), 0u);
}

TEST(DiskMmap, EvictionMakesTheNextLoadFaultAndReadTheDiskAgain) {
  ScratchDir dir;
  const Fixture s("disk-mmap");
  const auto store = s.make(dir.path());
  const std::uint64_t bytes = s.catalog.object_bytes();
  const std::uint64_t pages = bytes / kPageSize;
  Device device(bytes);

  // Cold: the file left the page cache when it was written.
  store->load(9, device.span());
  const Counters cold = store->counters();
  EXPECT_GT(cold.faults, 0u);
  EXPECT_EQ(cold.bytes_fetched, bytes);
  EXPECT_EQ(cold.pages_mapped, pages);  // every page read is mapped, by a fault or by fault-around
  EXPECT_EQ(cold.transitions, cold.faults);

  // Again without eviction: mapped and cached, nothing to fault or fetch.
  store->load(9, device.span());
  const Counters warm = store->counters();
  EXPECT_EQ(warm.faults, cold.faults);
  EXPECT_EQ(warm.bytes_fetched, cold.bytes_fetched);

  // After eviction every page is gone from the page cache (the mincore count before the copy says
  // so: all of it is fetched again) and from the page tables.
  store->evict(9);
  store->load(9, device.span());
  EXPECT_EQ(first_mismatch(s.catalog.object(9), 0, device.span()), std::nullopt);
  const Counters again = store->counters();
  EXPECT_GT(again.faults, warm.faults);
  EXPECT_EQ(again.bytes_fetched - warm.bytes_fetched, bytes);
  EXPECT_EQ(again.pages_mapped - warm.pages_mapped, pages);
  EXPECT_EQ(again.transitions, again.faults);  // the eviction's madvise and fadvise are not on the switch path
  EXPECT_NE(store->describe().find("read_ahead_kb"), std::string::npos) << store->describe();
}

TEST(DiskMmap, ReadaheadNeverReachesANeighbour) {
  // The objects lie apart in the file (holes between them), so each cold load finds none of its
  // bytes cached by the readahead of the loads before it: the disk supplies all of them, as in
  // the simulator. Packed back to back, object 4 would find its head read by object 3's window.
  ScratchDir dir;
  const Fixture s("disk-mmap");
  const auto store = s.make(dir.path());
  const std::uint64_t bytes = s.catalog.object_bytes();
  Device device(bytes);
  std::uint64_t fetched = 0;
  for (std::uint32_t object = 3; object < 7; ++object) {
    store->load(object, device.span());
    EXPECT_EQ(first_mismatch(s.catalog.object(object), 0, device.span()), std::nullopt) << object;
    const std::uint64_t now = store->counters().bytes_fetched;
    EXPECT_EQ(now - fetched, bytes) << "object " << object << " was partly cached before its load";
    fetched = now;
  }
}

TEST(DiskMmap, WithoutReadaheadEveryPageIsAMajorFault) {
  ScratchDir dir;
  const Fixture s("disk-mmap", {"memory.disk-mmap.readahead=4KiB"});
  const auto store = s.make(dir.path());
  Device device(s.catalog.object_bytes());
  store->load(4, device.span());
  const Counters c = store->counters();
  // MADV_RANDOM: the kernel reads only the faulting page, and fault-around finds nothing cached.
  EXPECT_EQ(c.faults, s.catalog.object_bytes() / kPageSize);
  EXPECT_EQ(c.bytes_fetched, s.catalog.object_bytes());
  EXPECT_NE(store->describe().find("MADV_RANDOM"), std::string::npos) << store->describe();
}

TEST(DiskMmap, OnlyQueueDepthOneAndABadScratchDirIsAClearError) {
  const Fixture deep("disk-mmap", {"memory.disk-mmap.queue_depth=4"});
  EXPECT_THROW(deep.make("/var/tmp"), InputError);
  for (const char* tier : {"disk-mmap", "disk-read"}) {
    const Fixture s(tier);
    try {
      s.make("/nonexistent/scratch");
      ADD_FAILURE() << tier << ": no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("emul.scratch_dir"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("/nonexistent/scratch"), std::string::npos) << e.what();
    }
  }
}

// Bytes read from the block device under `dir` so far (field 3 of its sysfs stat: 512-byte sectors,
// Documentation/block/stat.rst), or 0 when there is none: what really reached the (virtual) disk.
std::uint64_t device_bytes_read(const fs::path& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return 0;
  const std::string dev =
      "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
  std::ifstream in(dev + "/stat");
  std::uint64_t reads = 0, merged = 0, sectors = 0;
  in >> reads >> merged >> sectors;
  return sectors * 512;
}

// Not a check: prints load times per store, cold (right after an eviction) and warm (the same
// object again), and what reached the block device. Run with --gtest_also_run_disabled_tests
// --gtest_filter='*Timings*'; RMAI_TIMING_SCALE sets emul.scale (default 0.0113: 3.8 MiB objects).
TEST(Baselines, DISABLED_Timings) {
  const char* scale = std::getenv("RMAI_TIMING_SCALE");
  const std::string scale_set = std::string("emul.scale=") + (scale ? scale : "0.0113");
  const std::vector<Case> cases{
      {"dram", "dram", {}},
      {"disk-read QD1 1MiB", "disk-read", {}},
      {"disk-read QD8 256KiB",
       "disk-read",
       {"memory.disk-read.queue_depth=8", "memory.disk-read.read_chunk=256KiB"}},
      {"disk-read QD32 128KiB",
       "disk-read",
       {"memory.disk-read.queue_depth=32", "memory.disk-read.read_chunk=128KiB"}},
      {"disk-mmap", "disk-mmap", {}},
      {"disk-mmap no readahead", "disk-mmap", {"memory.disk-mmap.readahead=4KiB"}}};
  ScratchDir dir;
  for (const auto& c : cases) {
    auto sets = c.sets;
    sets.push_back(scale_set);
    const Fixture s(c.tier, sets);
    const auto store = s.make(dir.path());
    Device device(s.catalog.object_bytes());
    std::memset(device.bytes, 0, device.size);  // its first touch is not the tier's
    const std::uint32_t n = static_cast<std::uint32_t>(s.catalog.objects().size());
    const double mib = double(s.catalog.object_bytes()) / (1 << 20);
    struct Phase {
      double ms = 0, device_mib = 0;
      Counters counters;
    } cold, warm;
    const auto timed = [&](std::uint32_t id, Phase& phase) {
      const Counters before = store->counters();
      const std::uint64_t device_before = device_bytes_read(dir.path());
      const auto start = std::chrono::steady_clock::now();
      store->load(id, device.span());
      phase.ms += seconds_since(start) * 1e3 / n;
      phase.device_mib += double(device_bytes_read(dir.path()) - device_before) / (1 << 20) / n;
      const Counters after = store->counters();
      phase.counters.faults += after.faults - before.faults;
      phase.counters.transitions += after.transitions - before.transitions;
      phase.counters.bytes_fetched += after.bytes_fetched - before.bytes_fetched;
    };
    for (std::uint32_t id = 0; id < n; ++id) {
      store->evict(id);
      timed(id, cold);
      timed(id, warm);
    }
    std::printf("%-22s %.2f MiB objects  [%s]\n", c.name.c_str(), mib, store->describe().c_str());
    for (const auto& [name, p] : {std::pair{"cold", &cold}, std::pair{"warm", &warm}})
      std::printf(
          "  %s: %8.3f ms/load %6.2f GB/s; per load %6.1f faults %6.1f transitions, %.2f MiB "
          "fetched, "
          "%.2f MiB read by the device\n",
          name, p->ms, double(s.catalog.object_bytes()) / p->ms / 1e6,
          double(p->counters.faults) / n, double(p->counters.transitions) / n,
          double(p->counters.bytes_fetched) / n / (1 << 20), p->device_mib);
  }
}

}  // namespace
}  // namespace rmai::emul
