// The emulator's transport alone: fi_read from an in-process memd on loopback into registered
// memory, per provider (tcp = tcp;ofi_rxm, shm when this machine has it). 4 KiB latency at queue
// depth 1, and bandwidth of whole-object reads for several object sizes, read sizes and depths.
// Compare designs by ratio: this 2-core VM pays ~1 us per syscall (REFERENCE.md).
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

#include "fabric.hpp"
#include "memd.hpp"
#include "objects.hpp"
#include "remote.hpp"

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

}  // namespace

BENCHMARK_MAIN();
