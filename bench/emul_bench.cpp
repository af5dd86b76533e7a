// The emulator's transport alone: fi_read from an in-process memd on loopback into registered
// memory, per provider (tcp = tcp;ofi_rxm, shm when this machine has it). 4 KiB latency at queue
// depth 1, and bandwidth of whole-object reads for several object sizes, read sizes and depths.
// Compare designs by ratio: this 2-core VM pays ~1 us per syscall (docs/reference.md).
//
// TransportRig (server + catalog + RemoteSource for an object size) is the reusable part: region
// fault benchmarks build on the same rigs. RMAI_BENCH_SPIN_US=N sets the server's spin_us (memd.hpp)
// to compare progress policies.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "emul/fabric.hpp"
#include "emul/huge_pages.hpp"
#include "emul/memd.hpp"
#include "emul/objects.hpp"
#include "emul/region.hpp"
#include "emul/remote.hpp"

namespace {

using namespace rmai::emul;

constexpr std::uint64_t kKiB = 1 << 10;
constexpr std::uint64_t kMiB = 1 << 20;
const std::vector<std::string> kProviders{"tcp", "shm"};
const std::string kSecret = "bench-secret-0123456789abcdef";
// Objects per server: enough that consecutive reads do not hit the same object, few enough that a
// 64 MiB rig stays at 256 MiB.
constexpr std::uint32_t kObjects = 4;

// A catalog of kObjects objects of `object_bytes`, served by an in-process memd.
struct ServerRig {
  ServerRig(const std::string& provider, std::uint64_t object_bytes)
      : catalog({"bench-moe", 1, kObjects, double(object_bytes), 1, {}, 1}),
        server(catalog, [&] {
          MemoryServerOptions o;
          o.provider = provider;
          o.secret = kSecret;
          o.log = &log;
          if (const char* spin = std::getenv("RMAI_BENCH_SPIN_US")) o.spin_us = std::stoul(spin);
          return o;
        }()) {}
  std::ostringstream log;  // clients connecting, quietly
  Catalog catalog;
  MemoryServer server;
};

// One server per (provider, object size), kept for the whole run: generating and registering
// 256 MiB is slower than most benchmarks.
ServerRig& server_rig(const std::string& provider, std::uint64_t object_bytes) {
  static std::map<std::pair<std::string, std::uint64_t>, std::unique_ptr<ServerRig>> rigs;
  auto& rig = rigs[{provider, object_bytes}];
  if (!rig) rig = std::make_unique<ServerRig>(provider, object_bytes);
  return *rig;
}

// A client of the server rig with its own registered object-sized buffer.
struct TransportRig {
  TransportRig(ServerRig& s, std::uint64_t read_size, std::uint32_t depth)
      : server(s), source(s.catalog, [&] {
          RemoteOptions o;
          o.provider = s.server.provider();
          o.server = s.server.address();
          o.secret = kSecret;
          o.read_size = read_size;
          o.queue_depth = depth;
          return o;
        }()), buffer(s.catalog.object_bytes()) {
    source.register_buffer(buffer);
  }
  ServerRig& server;
  RemoteSource source;
  std::vector<std::byte> buffer;
};

// Makes the rig for a benchmark, or skips it with the reason (provider missing here).
std::unique_ptr<TransportRig> make_rig(benchmark::State& state, const std::string& provider, std::uint64_t object_bytes,
                                       std::uint64_t read_size, std::uint32_t depth) {
  if (const auto why = provider_unavailable_reason(provider); !why.empty()) {
    state.SkipWithError(why.c_str());
    return nullptr;
  }
  return std::make_unique<TransportRig>(server_rig(provider, object_bytes), read_size, depth);
}

// 4 KiB reads one at a time from random pages of random objects: the page-fault path's transport.
void BM_RawRead4K(benchmark::State& state) {
  const std::string& provider = kProviders[state.range(0)];
  const auto rig = make_rig(state, provider, 8 * kMiB, 4 * kKiB, 1);
  if (!rig) return;
  std::mt19937_64 random(1);
  const std::uint64_t pages = rig->server.catalog.object_bytes() / kPageSize;
  for (auto _ : state) {
    const auto object = static_cast<std::uint32_t>(random() % kObjects);
    rig->source.read(object, (random() % pages) * kPageSize, std::span(rig->buffer).first(kPageSize));
  }
  state.SetBytesProcessed(state.iterations() * kPageSize);
  state.SetLabel(provider);
}
BENCHMARK(BM_RawRead4K)->DenseRange(0, 1)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Whole objects, read_size bytes per fi_read with up to `depth` in flight.
void BM_RawReadBandwidth(benchmark::State& state) {
  const std::string& provider = kProviders[state.range(0)];
  const std::uint64_t object_bytes = state.range(1) * kMiB;
  const auto depth = static_cast<std::uint32_t>(state.range(2));
  const std::uint64_t read_size = state.range(3) * kKiB;
  const auto rig = make_rig(state, provider, object_bytes, read_size, depth);
  if (!rig) return;
  std::uint32_t object = 0;
  for (auto _ : state) {
    rig->source.read(object, 0, rig->buffer);
    object = (object + 1) % kObjects;
  }
  state.SetBytesProcessed(state.iterations() * object_bytes);
  state.SetLabel(provider + " " + std::to_string(state.range(1)) + " MiB qd" + std::to_string(depth) + " " +
                 std::to_string(state.range(3)) + " KiB reads");
}
BENCHMARK(BM_RawReadBandwidth)
    ->ArgNames({"provider", "MiB", "depth", "read_KiB"})
    ->ArgsProduct({{0, 1}, {2, 8, 64}, {1, 4, 16}, {256, 2048}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);


// ---- Region faults: the same transport behind a userfaultfd region (region.hpp). ----

// The huge pages a twin region needs, reserved for the whole run (root; see huge_pages.hpp).
HugePageReservation& huge_pages() {
  static HugePageReservation reservation(kObjects * 64 * kMiB / kHugePageSize + 8);
  return reservation;
}

// A region over a client of the server rig. Layout 0: twin on huge pages (the default where they can
// be had), 1: copy (anonymous memory + UFFDIO_COPY), 2: twin on 4 KiB shmem pages.
struct RegionRig {
  RegionRig(ServerRig& s, std::uint64_t read_size, std::uint32_t depth, Granularity granularity, int layout)
      : transport(s, read_size, depth), region(transport.source, [&] {
          RegionOptions o;
          o.granularity = granularity;
          o.layout = layout == 1 ? Layout::Copy : Layout::Twin;
          o.huge_pages = layout == 0 && huge_pages().ok();
          o.fallback = false;
          return o;
        }()) {}
  TransportRig transport;
  Region region;
};

const char* layout_name(const Region& r) {
  return r.layout() == Layout::Copy ? "copy" : r.huge_pages() ? "twin-hugetlb" : "twin-shmem";
}

std::unique_ptr<RegionRig> make_region_rig(benchmark::State& state, const std::string& provider,
                                           std::uint64_t object_bytes, std::uint64_t read_size, std::uint32_t depth,
                                           Granularity granularity, int layout) {
  if (const auto why = provider_unavailable_reason(provider); !why.empty()) {
    state.SkipWithError(why.c_str());
    return nullptr;
  }
  if (const auto why = userfaultfd_unavailable_reason(); !why.empty()) {
    state.SkipWithError(why.c_str());
    return nullptr;
  }
  if (layout == 0 && !huge_pages().ok()) {
    state.SkipWithError("no huge pages (needs root or vm.nr_hugepages)");
    return nullptr;
  }
  return std::make_unique<RegionRig>(server_rig(provider, object_bytes), read_size, depth, granularity, layout);
}

// One whole-object fault per iteration: the first touch maps the object (RMAI's dynamic region),
// the rest of its pages are checked to be mapped already. Eviction is outside the timing.
void BM_RegionFault(benchmark::State& state) {
  const std::string& provider = kProviders[state.range(0)];
  const std::uint64_t object_bytes = state.range(1) * kMiB;
  const auto depth = static_cast<std::uint32_t>(state.range(2));
  const std::uint64_t read_size = state.range(3) * kKiB;
  const auto rig = make_region_rig(state, provider, object_bytes, read_size, depth, Granularity::Region,
                                   static_cast<int>(state.range(4)));
  if (!rig) return;
  std::uint32_t object = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    const auto view = rig->region.object(object);
    for (std::uint64_t at = 0; at < view.size(); at += kPageSize) sum += static_cast<std::uint64_t>(view[at]);
    state.PauseTiming();
    rig->region.check();
    rig->region.evict(object);
    object = (object + 1) % kObjects;
    state.ResumeTiming();
  }
  benchmark::DoNotOptimize(sum);
  if (rig->region.counters().faults != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("more than one fault per object");
  state.SetBytesProcessed(state.iterations() * object_bytes);
  state.SetLabel(provider + " " + std::to_string(state.range(1)) + " MiB qd" + std::to_string(depth) + " " +
                 std::to_string(state.range(3)) + " KiB reads, " + layout_name(rig->region));
}
BENCHMARK(BM_RegionFault)
    ->ArgNames({"provider", "MiB", "depth", "read_KiB", "layout"})
    ->ArgsProduct({{0, 1}, {2, 8, 32, 64}, {4, 16}, {256, 2048}, {0, 1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One 4 KiB fault per iteration on pages not mapped yet (page granularity, copy layout: the page4k
// tier's path), served over the transport; with provider -1, served from local memory, which is
// the userfaultfd round trip alone.
void BM_Fault4K(benchmark::State& state) {
  const int p = static_cast<int>(state.range(0));
  std::unique_ptr<RegionRig> rig;
  std::unique_ptr<Catalog> local_catalog;
  std::unique_ptr<LocalSource> local;
  std::unique_ptr<Region> local_region;
  Region* region = nullptr;
  if (p >= 0) {
    rig = make_region_rig(state, kProviders[p], 8 * kMiB, 4 * kKiB, 1, Granularity::Page, 1);
    if (!rig) return;
    region = &rig->region;
  } else {
    if (const auto why = userfaultfd_unavailable_reason(); !why.empty()) {
      state.SkipWithError(why.c_str());
      return;
    }
    local_catalog = std::make_unique<Catalog>(CatalogSpec{"bench-moe", 1, kObjects, double(8 * kMiB), 1, {}, 1});
    local = std::make_unique<LocalSource>(*local_catalog);
    RegionOptions o;
    o.granularity = Granularity::Page;
    o.layout = Layout::Copy;
    local_region = std::make_unique<Region>(*local, o);
    region = local_region.get();
  }
  const std::uint64_t pages = 8 * kMiB / kPageSize;
  std::uint64_t page = 0, sum = 0;
  std::uint32_t object = 0;
  for (auto _ : state) {
    sum += static_cast<std::uint64_t>(region->object(object)[page * kPageSize]);
    if (++page == pages) {
      state.PauseTiming();
      region->evict(object);
      object = (object + 1) % kObjects;
      page = 0;
      state.ResumeTiming();
    }
  }
  benchmark::DoNotOptimize(sum);
  region->check();
  state.SetLabel(p >= 0 ? kProviders[p] + " 4 KiB fault" : "userfaultfd round trip, local bytes");
}
BENCHMARK(BM_Fault4K)->DenseRange(-1, 1)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
