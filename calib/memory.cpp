// dram and pcie: what the emulator's threads see of this machine's memory, one alone (flow_bandwidth)
// and all cores together (bandwidth), as `concurrency` threads load experts at once. Both come from
// one pool larger than the last-level cache, so that the loads and copies measured reach DRAM.
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <latch>
#include <numeric>
#include <thread>
#include <vector>

#include "calib/probes.hpp"
#include "calib/system.hpp"

namespace rmai::calib {
namespace {

constexpr std::size_t kKiB = 1024, kMiB = 1024 * kKiB;
constexpr std::size_t kLine = 64;

// The largest cache of cpu0 as the kernel reports it (sysfs "307200K"); 0 when unknown.
std::size_t llc_bytes() {
  std::size_t largest = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/devices/system/cpu/cpu0/cache", ec)) {
    std::ifstream in(entry.path() / "size");
    std::size_t value = 0;
    std::string unit;
    if (!(in >> value)) continue;
    in >> unit;
    if (unit == "K") value *= kKiB;
    if (unit == "M") value *= kMiB;
    largest = std::max(largest, value);
  }
  return largest;
}

// Twice the last-level cache, so that little of the pool can be cached; at least 256 MiB and at
// most 1 GiB (a bound on what the probe takes from a shared machine).
std::size_t pool_bytes(std::size_t llc) { return std::clamp<std::size_t>(2 * llc, 256 * kMiB, 1024 * kMiB) / kMiB * kMiB; }

// Streams through [data, data + bytes) with 8-byte loads the compiler vectorises.
std::uint64_t read_all(const std::byte* data, std::size_t bytes) {
  const auto* p = reinterpret_cast<const std::uint64_t*>(data);
  const std::size_t n = bytes / 8;
  std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (std::size_t i = 0; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  return s0 ^ s1 ^ s2 ^ s3;
}

// A small fast generator (xorshift64*): the permutation needs millions of draws, not quality.
struct Random {
  std::uint64_t state = 0x9E3779B97F4A7C15ULL;
  std::uint64_t next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
  }
  // In [0, n): the modulo's bias (n / 2^64) is far below what matters here.
  std::uint64_t below(std::uint64_t n) { return next() % n; }
};

// Links the lines of the pool into one random cycle (Sattolo's algorithm), each line holding the
// address of the next: a chase through it misses the caches and the TLB at almost every load.
void link_random_cycle(std::byte* pool, std::size_t bytes) {
  const std::size_t lines = bytes / kLine;
  std::vector<std::uint32_t> next(lines);
  std::iota(next.begin(), next.end(), 0u);
  Random random;
  for (std::size_t i = lines - 1; i > 0; --i) std::swap(next[i], next[random.below(i)]);
  for (std::size_t i = 0; i < lines; ++i) {
    std::byte* target = pool + std::size_t(next[i]) * kLine;
    std::memcpy(pool + i * kLine, &target, sizeof target);
  }
}

const std::byte* chase(const std::byte* p, std::size_t loads) {
  for (std::size_t i = 0; i < loads; ++i) p = *reinterpret_cast<const std::byte* const volatile*>(p);
  return p;
}

// The CPUs this process may run on at once (its affinity: a container's cpuset, taskset), the most
// that concurrent loads can share. At most 32, so that each thread's share of the smallest pool
// (256 MiB) holds two of the copies below.
unsigned cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  return static_cast<unsigned>(std::clamp(cpus, 1, 32));
}

// Seconds that `threads` threads take together, thread t running work(t, round) once, all started at
// once; `round` is a barrier of the threads, for work that goes in lockstep.
template <class Work>
double together(unsigned threads, const Work& work) {
  std::latch ready(threads + 1);
  std::barrier<> round(threads);
  std::atomic<bool> abandoned{false};
  std::vector<std::jthread> running;
  try {
    for (unsigned t = 0; t < threads; ++t)
      running.emplace_back([&, t] {
        ready.arrive_and_wait();
        if (!abandoned) work(t, round);
      });
  } catch (...) {  // a thread could not be made: release those that were, which then do nothing
    abandoned = true;
    ready.count_down(static_cast<std::ptrdiff_t>(threads - running.size() + 1));
    throw;
  }
  ready.arrive_and_wait();
  const double start = now_s();
  for (auto& thread : running) thread.join();
  return now_s() - start;
}

// How many times faster every core does the work of all than one thread alone: one thread doing
// every thread's share in turn (so that it streams the whole pool as they do, not one share the
// caches may hold), then all at once, back to back, so that both see the same moment of a shared
// machine (its rates move by 2x from second to second here, more than the two differ).
template <class Work>
double speedup(unsigned threads, const Work& work) {
  const double one = together(1, [&](unsigned, std::barrier<>& alone) {
    for (unsigned t = 0; t < threads; ++t) work(t, alone);
  });
  return one / together(threads, work);
}

// A link measured alone and by every core at once: flow_bandwidth what one thread moves
// (one_thread), bandwidth that times the median speedup of all cores (at least 1: the total is
// never less than what one transfer gets alone), so that concurrent switches in the simulator
// share the second and each gets at most the first. On one core (no speedups): no cap. `work` says
// what the threads do, for the probe's comment.
void add_bandwidths(Entries& entries, Measurement one_thread, const std::vector<double>& speedups, unsigned threads,
                    const std::string& work) {
  if (speedups.empty()) {
    entries.push_back({"bandwidth", Unit::Bandwidth, std::move(one_thread)});
    return;
  }
  std::vector<double> per_repeat;
  for (const double x : speedups) per_repeat.push_back(one_thread.value * std::max(1.0, x));
  const std::string n = std::to_string(threads);
  Measurement shared = from_repeats(per_repeat, n + " threads (the cores) at once " + work + ", against one thread doing the " +
                                                    n + " shares in turn right before, per repeat; the speedup is the one's "
                                                    "time over the all's");
  const double median_speedup = shared.value / one_thread.value;
  shared.derivation = "flow_bandwidth " + human(one_thread.value, Unit::Bandwidth) + " x the speedup of all cores, " +
                      std::to_string(std::lround(median_speedup * 100)) + "% of one (median; each repeat's at least 100%)";
  entries.push_back({"bandwidth", Unit::Bandwidth, std::move(shared)});
  entries.push_back({"flow_bandwidth", Unit::Bandwidth, std::move(one_thread)});
}

}  // namespace

MemoryResults probe_memory(const Settings& s) {
  const std::size_t llc = llc_bytes();
  const std::size_t bytes = pool_bytes(llc);
  const std::string pool_text = human(double(bytes), Unit::Bytes) + " pool (the last-level cache is " +
                                (llc ? human(double(llc), Unit::Bytes) : std::string("unknown")) + ")";
  s.note("dram: writing a " + pool_text);
  const Mapping pool = Mapping::anonymous(bytes, "the DRAM pool");
  std::uint64_t keep = read_all(pool.data(), bytes);  // a warm-up pass

  MemoryResults out;
  // One-thread read bandwidth: passes over the whole pool.
  const int passes = s.quick ? 2 : 4;
  std::vector<double> bandwidth;
  for (unsigned r = 0; r < s.repeats; ++r) {
    const double start = now_s();
    for (int p = 0; p < passes; ++p) keep += read_all(pool.data(), bytes);
    bandwidth.push_back(double(bytes) * passes / (now_s() - start));
  }
  // The same passes by every core at once, each over its share of the pool, against one thread alone.
  const unsigned threads = cores();
  std::vector<double> read_speedups;
  for (unsigned r = 0; threads > 1 && r < s.repeats; ++r) {
    std::vector<std::uint64_t> sums(threads);
    const std::size_t share = bytes / threads / kLine * kLine;
    read_speedups.push_back(speedup(threads, [&](unsigned t, std::barrier<>&) {
      for (int p = 0; p < passes; ++p) sums[t] += read_all(pool.data() + t * share, share);
    }));
    for (const auto sum : sums) keep += sum;
  }
  add_bandwidths(out.dram,
                 from_repeats(bandwidth, "one thread streaming 8-byte loads (vectorised) over a " + pool_text + ", " +
                                             std::to_string(passes) + " passes per repeat"),
                 read_speedups, threads,
                 "streaming 8-byte loads " + std::to_string(passes) + " times over 1/" + std::to_string(threads) +
                     " each of the " + pool_text);
  s.note("dram: bandwidth " + human(out.dram.front().m.value, Unit::Bandwidth));

  // Load latency: a pointer chase through a random cycle over every line of the pool.
  link_random_cycle(pool.data(), bytes);
  const std::size_t loads = s.quick ? 250000 : 1000000;
  const std::byte* p = chase(pool.data(), 20000);
  std::vector<double> latency;
  for (unsigned r = 0; r < s.repeats; ++r) {
    const double start = now_s();
    p = chase(p, loads);
    latency.push_back((now_s() - start) / double(loads));
  }
  keep += reinterpret_cast<std::uintptr_t>(p);
  out.dram.push_back({"latency", Unit::Time,
                      from_repeats(latency, "pointer chase through a random cyclic permutation of the 64 B lines of the " +
                                                pool_text + ", " + std::to_string(loads) +
                                                " dependent loads per repeat (TLB misses included, as a program sees them)")});
  const double dram_latency = out.dram.back().m.value;
  s.note("dram: latency " + human(dram_latency, Unit::Time));

  // The copy to the device: memcpy of objects taken in turn from the pool into one fixed buffer, as
  // the emulator's switch copies an expert into its device buffer (emul/emul_replay.cpp).
  // From 1 MiB: below that the fixed destination stays in the CPU's private caches and the copy
  // runs up to 1.4x faster per byte (measured here), which no expert-sized copy sees. Up to 16 MiB:
  // above it the destination leaves the caches too and the copy slows again (here 5.8-6.3 GB/s at
  // 64 MiB against 7.8-9.1 GB/s at 5.25 MiB), so a line through 1-64 MiB said 6.5-7.1 GB/s where
  // the emulator's experts (5.25 MiB at validate.yaml's scale) copied at 9 GB/s. The simulator's
  // copy is one line: it is fitted where the emulator copies.
  SizeSweep sweep;
  const std::size_t largest = s.quick ? 8 * kMiB : 16 * kMiB;
  for (std::size_t size = kMiB; size <= largest; size *= 2) sweep.sizes.push_back(double(size));
  const Mapping device = Mapping::anonymous(largest, "the device buffer");
  // Bytes copied per size and repeat; quick too: at 32 MiB (2 ms) the rate of a shared machine
  // moved by 2x from one calibration to the next.
  const std::size_t budget = 128 * kMiB;
  std::size_t cursor = 0;
  for (const double size_d : sweep.sizes) {
    const auto size = static_cast<std::size_t>(size_d);
    const std::size_t copies = std::clamp<std::size_t>(budget / size, 2, 16384);
    std::vector<double> times;
    for (unsigned r = 0; r < s.repeats; ++r) {
      const double start = now_s();
      for (std::size_t c = 0; c < copies; ++c) {
        if (cursor + size > bytes) cursor = 0;
        std::memcpy(device.data(), pool.data() + cursor, size);
        cursor += size;
      }
      times.push_back((now_s() - start) / double(copies));
    }
    keep += static_cast<std::uint64_t>(device.data()[size - 1]);
    sweep.times.push_back(times);
  }
  const std::string copy_probe = "memcpy of " + sizes_text(sweep.sizes) + " taken in turn from the " + pool_text +
                                 " into one fixed buffer (as the emulator copies an expert to its device buffer), " +
                                 human(double(budget), Unit::Bytes) + " per size and repeat; fit t(size) = a + size / "
                                 "(one thread's bandwidth)";
  Measurement one_copy = from_fit(sweep, [](const LineFit& f) { return 1 / f.slope; }, copy_probe);
  const LineFit copy_fit = *one_copy.fit;
  // Every core copying at once, each from its share of the pool into a device buffer of its own (as
  // the emulator's loading threads do), at the sweep's middle size, against one thread alone.
  const std::size_t copy_size = 4 * kMiB;
  std::vector<double> copy_speedups;
  if (threads > 1) {
    const Mapping devices = Mapping::anonymous(copy_size * threads, "the device buffers");
    const std::size_t share = bytes / threads / copy_size * copy_size;
    // Four times the sweep's bytes: in a run of a few milliseconds the threads' start would weigh.
    const std::size_t copies = 4 * budget / copy_size;
    for (unsigned r = 0; r < s.repeats; ++r)
      copy_speedups.push_back(speedup(threads, [&](unsigned t, std::barrier<>& round) {
        for (std::size_t c = 0; c < copies; ++c) {
          std::memcpy(devices.data() + t * copy_size, pool.data() + t * share + c * copy_size % share, copy_size);
          round.arrive_and_wait();  // as the loading threads meet per layer
        }
      }));
    keep += static_cast<std::uint64_t>(devices.data()[copy_size - 1]);
  }
  add_bandwidths(out.pcie, std::move(one_copy), copy_speedups, threads,
                 "copying " + human(4.0 * double(budget), Unit::Bytes) + " each in " + human(double(copy_size), Unit::Bytes) +
                     " pieces taken in turn from its share of the " + pool_text +
                     " into a buffer of its own, in lockstep (a barrier after each piece)");
  Measurement latency_m = from_fit(
      sweep, [dram_latency](const LineFit& f) { return std::max(0.0, f.intercept - dram_latency); }, copy_probe,
      "the fit's a = " + human(copy_fit.intercept, Unit::Time) + " minus the DRAM latency (" + human(dram_latency, Unit::Time) +
          "), which the route to the GPU already charges on the dram link" +
          (copy_fit.intercept < dram_latency ? "; negative (" + human(copy_fit.intercept - dram_latency, Unit::Time) + "), so 0"
                                             : std::string()));
  out.pcie.push_back({"latency", Unit::Time, latency_m});
  s.note("pcie (memcpy): bandwidth " + human(out.pcie.front().m.value, Unit::Bandwidth) + ", latency " +
         human(out.pcie.back().m.value, Unit::Time));
  if (keep == 42) s.note("");  // keeps the loads: the compiler cannot know the sum
  return out;
}

}  // namespace rmai::calib
