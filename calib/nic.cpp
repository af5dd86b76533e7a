// nic and os.swap_in_path: the emulator's transport, libfabric reads from a memd through
// RemoteSource (emul/remote.hpp), and a 4 KiB fault through the emulator's own page-granularity
// region (emul/region.hpp) served by it. The memd is rmai calibrate's child on loopback, or one on
// a memory server (--server): then these are the numbers of that network and NIC.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "calib/probes.hpp"
#include "config/errors.hpp"
#include "emul/control.hpp"
#include "emul/huge_pages.hpp"
#include "emul/objects.hpp"
#include "emul/region.hpp"
#include "emul/remote.hpp"
#include "posix/errors.hpp"
#include "sim/stream.hpp"

namespace rmai::calib {
namespace {
using posix::throw_errno;

constexpr std::uint64_t kKiB = 1024, kMiB = 1024 * kKiB;
// The largest read of the depth-1 sweep: objects must be at least this large.
constexpr std::uint64_t kLargestRead = 4 * kMiB;
// Bytes of an object the bandwidth probe reads (and its buffer holds) at most.
constexpr std::uint64_t kBandwidthChunk = 64 * kMiB;
// The rmai tier's read shape (models/tiers/rmai.yaml: fault_batch 64 pages, queue_depth 16), which
// the bandwidth and region-fault probes take.
constexpr std::uint64_t kRmaiRead = 256 * kKiB;
constexpr std::uint32_t kRmaiDepth = 16;
// The region-fault probe faults its objects in turn at fresh offsets and evicts each right before
// its next fault, as an LRU cache of that many slots does: the frames a fault gets were written
// kRegionRing faults earlier and the bytes it reads were not read in this pass, out of the CPU's
// caches as in the emulator's rmai switches. Fault, evict, fault again instead got the frames
// just freed, still cached, and bytes just read: on 2026-12-03 here 2-8 MiB faults at 3.7 GB/s
// where the emulator's 5.25 MiB faults ran at 2.2 GB/s, so that every calibration predicted the
// rmai tier 20-40% fast; over the ring the same probe gave 2.5-2.8 GB/s, the emulator's faults
// minutes later 2.2-2.8 GB/s. kRegionRing x kLargestRegion / 2 MiB huge pages are mapped at most
// (kHugePagesNeeded).
constexpr std::uint32_t kRegionRing = 8;
constexpr std::uint64_t kLargestRegion = 8 * kMiB;
static_assert(kHugePagesNeeded >= kRegionRing * kLargestRegion / (2 * kMiB), "the ring maps this many huge pages at most");

emul::RemoteSource connect(const emul::Catalog& catalog, const Transport& t, std::uint64_t read_size, std::uint32_t depth) {
  emul::RemoteOptions o;
  o.provider = t.provider;
  o.server = t.server;
  o.secret = t.secret;
  o.read_size = read_size;
  o.queue_depth = depth;
  return emul::RemoteSource(catalog, o);
}

// Each read of `size` bytes at the next place: through an object, then the next object.
struct Cursor {
  const emul::Catalog& catalog;
  std::uint32_t object = 0;
  std::uint64_t offset = 0;
  void advance(std::uint64_t size) {
    offset += size;
    if (offset + size > catalog.object_bytes()) {
      offset = 0;
      object = (object + 1) % static_cast<std::uint32_t>(catalog.objects().size());
    }
  }
};

double timed_read(emul::RemoteSource& source, Cursor& at, std::span<std::byte> buffer) {
  const double start = now_s();
  source.read(at.object, at.offset, buffer);
  const double t = now_s() - start;
  at.advance(buffer.size());
  return t;
}

// A TCP echo of 8-byte messages on 127.0.0.1, in a child process that dies with us: the far end of
// the ping-pong. Built before fork; the child makes only system calls.
class EchoChild {
 public:
  EchoChild() {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0) throw_errno("socket");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listener, 1) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ::close(listener);
      throw_errno("the ping-pong's listening socket");
    }
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
      ::close(listener);
      throw_errno("fork");
    }
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      const int fd = ::accept(listener, nullptr, nullptr);
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      char message[8];
      while (::recv(fd, message, sizeof message, MSG_WAITALL) == sizeof message)
        if (::send(fd, message, sizeof message, 0) != sizeof message) break;
      ::_exit(0);
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    const bool ok = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
    ::close(listener);
    if (!ok) {
      const int error = errno;
      stop();
      errno = error;
      throw_errno("connect to the ping-pong's echo");
    }
  }
  ~EchoChild() { stop(); }
  EchoChild(const EchoChild&) = delete;
  EchoChild& operator=(const EchoChild&) = delete;

  double round_trip() {
    char message[8] = "ping";
    const double start = now_s();
    if (::send(fd_, message, sizeof message, 0) != sizeof message || ::recv(fd_, message, sizeof message, MSG_WAITALL) != sizeof message)
      throw_errno("the ping-pong");
    return now_s() - start;
  }

 private:
  void stop() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    pid_ = 0;
  }
  pid_t pid_ = 0;
  int fd_ = -1;
};

// A TCP handshake with memd's control port (connect() returns when the server's kernel has
// answered the SYN: one network round trip, with no process woken on the far side).
double handshake(const std::string& server) {
  const auto [host, port] = emul::parse_host_port(server, "--server");
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
    throw std::runtime_error("cannot resolve " + host + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> addresses(found, ::freeaddrinfo);
  const int fd = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  if (fd < 0) throw_errno("socket");
  const double start = now_s();
  const int rc = ::connect(fd, found->ai_addr, found->ai_addrlen);
  const double t = now_s() - start;
  const int error = errno;
  ::close(fd);
  if (rc != 0) {
    errno = error;
    throw_errno("connect to memd at " + server);
  }
  return t;
}

// One-way latency from a ping-pong on the path the provider takes to memd.
Measurement probe_latency(const Settings& s, const Transport& t) {
  if (t.provider == "shm") {
    Measurement none;  // read once: 0
    none.probe = "none: shm moves the bytes through shared memory on this machine, with no network path to ping, "
                 "so latency is 0 and the fixed cost of a read is all op_overhead";
    return none;
  }
  std::vector<double> one_way;
  if (t.local) {
    EchoChild echo;
    const int trips = s.quick ? 1000 : 5000;
    for (int i = 0; i < 100; ++i) echo.round_trip();
    for (unsigned r = 0; r < s.repeats; ++r) {
      std::vector<double> each;
      for (int i = 0; i < trips; ++i) each.push_back(echo.round_trip());
      one_way.push_back(median(each) / 2);
    }
    return from_repeats(one_way, "half the round trip of a TCP ping-pong over loopback (the path to this memd; tcp;ofi_rxm "
                                 "takes it): 8 B each way, TCP_NODELAY, to an echo in a child process, median of " +
                                     std::to_string(trips) + " round trips per repeat (mostly the wake-up of the blocked "
                                     "receiver, as memd's progress thread wakes for each read)");
  }
  const int trips = s.quick ? 50 : 200;
  for (unsigned r = 0; r < s.repeats; ++r) {
    std::vector<double> each;
    for (int i = 0; i < trips; ++i) each.push_back(handshake(t.server));
    one_way.push_back(median(each) / 2);
  }
  return from_repeats(one_way, "half the round trip of TCP handshakes with memd's control port at " + t.server +
                                   " (connect() returns once the server's kernel answered the SYN: one network round trip, "
                                   "no process woken there), median of " + std::to_string(trips) +
                                   " per repeat; memd logs them as connections without a hello");
}

}  // namespace

emul::Catalog served_catalog(const Transport& t) {
  // The catalog is the one memd serves, whatever experiment it was started with.
  const emul::ControlClient hello(t.server, t.secret, 30);
  if (hello.welcome().provider != t.provider)
    throw InputError("--provider", "memd at " + t.server + " serves via " + hello.welcome().provider + ", not " + t.provider);
  emul::Catalog catalog(hello.welcome().catalog);
  if (catalog.object_bytes() < kLargestRead || catalog.objects().size() < 2)
    throw InputError("--server", "memd at " + t.server + " serves " + std::to_string(catalog.objects().size()) + " objects of " +
                                     human(double(catalog.object_bytes()), Unit::Bytes) +
                                     ": calibrate needs at least 2 of 4 MiB (start it with calib/memd.yaml)");
  return catalog;
}

NicResults probe_nic(const Settings& s, const Transport& t, const Entries& os, const Entries& dram) {
  const double dram_latency = find(dram, "latency").value;
  const unsigned R = s.repeats;
  const emul::Catalog catalog = served_catalog(t);
  NicResults out;
  const std::string where = t.local ? "memd on loopback (rmai calibrate's child, calib/memd.yaml)" : "memd at " + t.server;
  out.describe = where + " via " + t.provider + ", " + std::to_string(catalog.objects().size()) + " objects of " +
                 human(double(catalog.object_bytes()), Unit::Bytes);
  s.note("nic: " + out.describe);

  Measurement latency = probe_latency(s, t);

  // Bandwidth: whole objects at the rmai tier's shape (256 KiB reads, 16 in flight).
  {
    auto source = connect(catalog, t, kRmaiRead, kRmaiDepth);
    const std::uint64_t chunk = std::min(catalog.object_bytes(), kBandwidthChunk);
    std::vector<std::byte> buffer(chunk);
    source.register_buffer(buffer);
    const std::uint64_t target = s.quick ? 256 * kMiB : 1024 * kMiB;
    const std::uint64_t objects = std::max<std::uint64_t>(2, target / chunk);
    std::vector<double> bandwidth_s;
    std::uint32_t object = 0;
    source.read(object, 0, buffer);  // warm-up
    for (unsigned r = 0; r < R; ++r) {
      const double start = now_s();
      for (std::uint64_t i = 0; i < objects; ++i) {
        object = (object + 1) % static_cast<std::uint32_t>(catalog.objects().size());
        source.read(object, 0, buffer);
      }
      bandwidth_s.push_back(double(objects * chunk) / (now_s() - start));
    }
    out.nic.push_back({"bandwidth", Unit::Bandwidth,
                       from_repeats(bandwidth_s, "whole-object reads through RemoteSource at the rmai tier's shape "
                                                 "(256 KiB fi_reads, 16 in flight) of " + human(double(chunk), Unit::Bytes) +
                                                 " objects from " + where + ", " + std::to_string(objects) +
                                                 " objects per repeat, bytes over time")});
    source.deregister_buffer(buffer);
  }
  s.note("nic: bandwidth " + human(out.nic.back().m.value, Unit::Bandwidth));

  // Reads at queue depth 1 over sizes (one fi_read each), and the wake-up after an idle client.
  SizeSweep sweep;
  const std::vector<std::uint64_t> sizes = s.quick ? std::vector<std::uint64_t>{64, 4 * kKiB, 64 * kKiB, kMiB, 4 * kMiB}
                                                   : std::vector<std::uint64_t>{64, 256, kKiB, 4 * kKiB, 16 * kKiB, 64 * kKiB,
                                                                                256 * kKiB, kMiB, 4 * kMiB};
  std::vector<double> idle_s, busy_s, wakeup_s;
  const int pairs = s.quick ? 50 : 200;
  const std::uint64_t budget = s.quick ? 8 * kMiB : 32 * kMiB;
  {
    auto source = connect(catalog, t, kLargestRead, 1);
    std::vector<std::byte> buffer(kLargestRead);
    source.register_buffer(buffer);
    Cursor at{catalog};
    for (const std::uint64_t size : sizes) {
      sweep.sizes.push_back(double(size));
      const std::span<std::byte> piece(buffer.data(), size);
      const auto reads = std::clamp<std::uint64_t>(budget / size, s.quick ? 4 : 8, s.quick ? 100 : 400);
      std::vector<double> times;
      timed_read(source, at, piece);  // warm-up
      for (unsigned r = 0; r < R; ++r) {
        std::vector<double> each;
        for (std::uint64_t i = 0; i < reads; ++i) each.push_back(timed_read(source, at, piece));
        times.push_back(median(each));
      }
      sweep.times.push_back(times);
    }
    // A 4 KiB read after the client idled ~150 us in poll() (as a region's handler thread does
    // between faults), then one right after it.
    const std::span<std::byte> page(buffer.data(), 4 * kKiB);
    for (unsigned r = 0; r < R; ++r) {
      std::vector<double> idle, busy;
      for (int i = 0; i < pairs; ++i) {
        const timespec nap{0, 150000};
        ::ppoll(nullptr, 0, &nap, nullptr);
        idle.push_back(timed_read(source, at, page));
        busy.push_back(timed_read(source, at, page));
      }
      idle_s.push_back(median(idle));
      busy_s.push_back(median(busy));
      wakeup_s.push_back(idle_s.back() - busy_s.back());
    }
    source.deregister_buffer(buffer);
  }
  const LineFit depth1 = fit_medians(sweep);
  const double c0 = depth1.intercept;
  // One 4 KiB read at depth 1 as the fit has it (what the simulator charges for it: c0 + size /
  // bandwidth), and as measured.
  const double read4k = c0 + 4.0 * kKiB * depth1.slope;
  const std::size_t page_index = static_cast<std::size_t>(std::find(sizes.begin(), sizes.end(), 4 * kKiB) - sizes.begin());
  const double read4k_measured = median(sweep.times.at(page_index));
  // The ping-pong may take longer than the read's whole fixed cost (a TCP stack beside an RDMA
  // path): then the read bounds it, and op_overhead is 0.
  const double latency_cap = std::max(0.0, (c0 - dram_latency) / 2);
  if (latency.value > latency_cap) {
    latency.derivation = "the ping-pong's " + human(latency.value, Unit::Time) + " is more than the reads leave ((c0 " +
                         human(c0, Unit::Time) + " - DRAM latency) / 2): capped at " + human(latency_cap, Unit::Time);
    latency.value = latency_cap;
    for (double* v : {&latency.repeats.median, &latency.repeats.min, &latency.repeats.max}) *v = std::min(*v, latency_cap);
  }
  out.nic.push_back({"latency", Unit::Time, latency});
  const double lat = latency.value;
  const std::string sweep_probe =
      "fi_reads at queue depth 1 of " + sizes_text(sweep.sizes) + " through RemoteSource (one fi_read each) from " + where +
      ", median of up to " + std::to_string(s.quick ? 100 : 400) + " reads per size and repeat; fit t(size) = c0 + size / "
      "bw_qd1: c0 " + human(c0, Unit::Time) + ", bw_qd1 " + human(1 / depth1.slope, Unit::Bandwidth);
  Measurement overhead = from_fit(
      sweep, [lat, dram_latency](const LineFit& f) { return std::max(0.0, f.intercept - 2 * lat - dram_latency); }, sweep_probe,
      "c0 = op_overhead + 2 x latency + DRAM latency (the route back): " + human(c0, Unit::Time) + " - 2 x " +
          human(lat, Unit::Time) + " - " + human(dram_latency, Unit::Time) +
          (c0 - 2 * lat - dram_latency < -1e-12 ? " is negative, so 0"
           : latency.value == latency_cap   ? " = 0 (the capped latency takes the rest)"
                                            : ""));
  out.nic.push_back({"op_overhead", Unit::Time, overhead});
  std::vector<double> wakeup_clamped;
  for (const double w : wakeup_s) wakeup_clamped.push_back(std::max(0.0, w));
  const double wakeup_raw = median(wakeup_s);
  out.nic.push_back(
      {"wakeup", Unit::Time,
       from_repeats(wakeup_clamped,
                    "4 KiB reads at queue depth 1 issued after the client idled 150 us in ppoll() (as a userfaultfd handler "
                    "thread waits between faults), median " + human(median(idle_s), Unit::Time) +
                        ", against the read issued right after each, median " + human(median(busy_s), Unit::Time) + "; " +
                        std::to_string(pairs) + " pairs per repeat",
                    "the difference per repeat, at least 0 (raw median " + human(wakeup_raw, Unit::Time) + ")")});
  const double wakeup = out.nic.back().m.value;
  s.note("nic: latency " + human(lat, Unit::Time) + ", op_overhead " + human(overhead.value, Unit::Time) + ", wakeup " +
         human(wakeup, Unit::Time) + " (4 KiB read " + human(read4k_measured, Unit::Time) + ")");

  // A 4 KiB fault through the emulator's region at page granularity (the page4k tier's path).
  const int faults = s.quick ? 300 : 1000;
  std::vector<double> fault_s;
  {
    auto source = connect(catalog, t, 4 * kKiB, 1);
    emul::RegionOptions o;
    o.granularity = emul::Granularity::Page;
    o.layout = emul::Layout::Copy;  // what page4k takes (emul/stores/region.cpp: no huge pages at page granularity)
    emul::Region region(source, o);
    const std::uint64_t pages = std::min<std::uint64_t>(faults, catalog.object_bytes() / emul::kPageSize);
    std::uint64_t keep = 0;
    for (unsigned r = 0; r <= R; ++r) {  // the first round warms up, untimed
      const auto object = static_cast<std::uint32_t>(r % catalog.objects().size());
      const auto view = region.object(object);
      std::vector<double> each;
      for (std::uint64_t p = 0; p < pages; ++p) {
        const double start = now_s();
        keep += static_cast<std::uint64_t>(*(volatile const std::byte*)(view.data() + p * emul::kPageSize));
        each.push_back(now_s() - start);
      }
      region.check();
      region.evict(object);
      if (r > 0) fault_s.push_back(median(each));
    }
    if (region.faults() != (R + 1) * pages)
      throw std::runtime_error("the 4 KiB fault probe took " + std::to_string(region.faults()) + " faults for " +
                               std::to_string((R + 1) * pages) + " pages");
    if (keep == 42) s.note("");
  }
  const double trap = find(os, "fault_trap").value, handler = find(os, "fault_handler").value, pte = find(os, "pte_install").value;
  const double known = trap + handler + pte + read4k + wakeup;
  std::vector<double> swap_s;
  for (const double f : fault_s) swap_s.push_back(std::max(0.0, f - known));
  const double fault = median(fault_s);
  out.swap_in_path = {
      "swap_in_path", Unit::Time,
      from_repeats(swap_s,
                   "4 KiB faults through the emulator's page-granularity region (emul/region.hpp, copy layout, as the page4k "
                   "tier runs) served by RemoteSource (4 KiB reads, depth 1) from " + where + ", timed by the faulting "
                   "thread, median of " + std::to_string(faults) + " per repeat: " + human(fault, Unit::Time),
                   "the fault minus fault_trap + fault_handler + pte_install + one 4 KiB read at depth 1 (the "
                   "depth-1 fit at 4 KiB, c0 + 4 KiB / bw_qd1: " + human(read4k, Unit::Time) + "; measured median " +
                       human(read4k_measured, Unit::Time) + ") + nic wakeup = " + human(known, Unit::Time) +
                       " (the userfaultfd round trip and the handler's work remain), at least 0 (raw " +
                       human(fault - known, Unit::Time) + ")")};
  s.note("os: 4 KiB fault through the region " + human(fault, Unit::Time) + " -> swap_in_path " +
         human(out.swap_in_path.m.value, Unit::Time));

  // Whole-region faults through the emulator's region at the rmai tier's shape (twin layout on 2 MiB
  // hugetlb pages, 256 KiB reads, 16 in flight), S bytes per fault over kRegionRing objects. What a
  // fault costs beyond what the simulator charges it besides its pages (the fixed costs: trap,
  // handler, region lookup, wake-up; and its transfer, Transfer::stream with this calibration's nic
  // numbers), per huge page, is the frame's allocation and zeroing, the mapping, and the transport
  // writing into frames just zeroed: measured as the rmai path pays it, it replaces the sum of its
  // parts (os.cpp), and the simulated fault of each probed size is the probe's. Against the model's
  // transfer rather than a read paired with each fault (2026-12-03): reads of 2-8 MiB at fresh
  // offsets ran 10-30% slower than the 64 MiB bandwidth probe's, the simulator charges the latter,
  // and so every calibration left the difference out of the fault (rmai 15-35% fast here and on the
  // CI host). Per size rather than a line's slope: over 2-8 MiB the slope of three noisy medians is
  // far less certain than their level.
  const Measurement direct_huge_map = find(os, "huge_map");
  // What the simulator charges a transfer of `size` from a server on an idle route: the rmai tier's
  // stream (sim/tiers/rmai.cpp) on the route server NIC, node NIC, DRAM (sim/cluster.cpp, where
  // the DRAM link carries its one-flow cap too: the narrowest may be the DRAM on a fast NIC).
  const double op_cost = sim::rdma_read_cost(find(out.nic, "op_overhead").value, lat);
  const double route_latency = lat + dram_latency;
  double bandwidth = std::min(find(out.nic, "bandwidth").value, find(dram, "bandwidth").value);
  for (const auto& e : dram)  // one core: no one-flow cap (calib/memory.cpp)
    if (e.key == "flow_bandwidth") bandwidth = std::min(bandwidth, e.m.value);
  const auto model_transfer = [&](double size) {
    return sim::stream_fixed_time(sim::pieces(size, double(kRmaiRead)), kRmaiDepth, op_cost, route_latency) +
           route_latency + size / bandwidth;
  };
  SizeSweep region_sweep;
  // Up to the object's size: a larger chunk would be cut at the object's end.
  for (std::uint64_t size = 2 * kMiB; size <= std::min<std::uint64_t>(kLargestRegion, catalog.object_bytes() / 2); size *= 2)
    region_sweep.sizes.push_back(double(size));
  const auto ring = static_cast<std::uint32_t>(std::min<std::size_t>(kRegionRing, catalog.objects().size()));
  const int per_repeat = (s.quick ? 1 : 2) * static_cast<int>(ring);  // every object faulted once or twice a repeat
  std::vector<std::byte> device(static_cast<std::size_t>(region_sweep.sizes.back()));
  for (const double size : region_sweep.sizes) {
    auto source = connect(catalog, t, kRmaiRead, kRmaiDepth);
    emul::RegionOptions o;
    o.granularity = emul::Granularity::Region;
    o.region_chunk = static_cast<std::uint64_t>(size);
    o.layout = emul::Layout::Twin;
    o.huge_pages = true;
    o.fallback = false;
    emul::Region region(source, o);
    if (!region.huge_pages()) throw std::runtime_error("the region fault probe could not map 2 MiB pages");
    std::vector<double> faults;  // per repeat
    std::uint64_t keep = 0;
    std::uint32_t object = 0;
    std::vector<std::uint64_t> next_offset(ring, 0);
    std::vector<bool> mapped(ring, false);
    for (unsigned r = 0; r <= R; ++r) {  // the first round warms up, untimed
      std::vector<double> each;
      for (int i = 0; i < per_repeat; ++i) {
        object = (object + 1) % ring;
        if (mapped[object]) region.evict(object);  // the least recently faulted: its frames are cold
        const std::uint64_t offset = next_offset[object];
        next_offset[object] = offset + 2 * size <= catalog.object_bytes() ? offset + size : 0;
        const auto view = region.object(object);
        const double start = now_s();
        keep += static_cast<std::uint64_t>(*(volatile const std::byte*)(view.data() + offset));
        each.push_back(now_s() - start);
        region.check();
        mapped[object] = true;
        // Untimed, as the emulator's switch copies the expert it faulted to its device buffer
        // before the next fault: the caches the next fault meets are the ones that copy left.
        std::memcpy(device.data(), view.data() + offset, static_cast<std::size_t>(size));
      }
      if (r > 0) faults.push_back(median(each));
    }
    region_sweep.times.push_back(faults);
    if (keep == 42) s.note("");
  }
  const double before = trap + handler + find(os, "region_lookup").value + wakeup;
  std::vector<double> per_repeat_value;
  for (unsigned r = 0; r < R; ++r) {
    std::vector<double> per_size;
    for (std::size_t i = 0; i < region_sweep.sizes.size(); ++i) {
      const double size = region_sweep.sizes[i];
      const double pages = size / double(emul::kHugePageSize);
      per_size.push_back(std::max(0.0, (region_sweep.times[i][r] - before - model_transfer(size)) / pages));
    }
    per_repeat_value.push_back(median(per_size));
  }
  std::string medians;
  for (std::size_t i = 0; i < region_sweep.sizes.size(); ++i)
    medians += (i ? ", " : "") + human(region_sweep.sizes[i], Unit::Bytes) + " " + human(median(region_sweep.times[i]), Unit::Time) +
               " (transfer " + human(model_transfer(region_sweep.sizes[i]), Unit::Time) + ")";
  out.huge_map = {
      "huge_map", Unit::Time,
      from_repeats(per_repeat_value,
                   "whole-region faults of " + sizes_text(region_sweep.sizes) + " through the emulator's region (twin layout "
                   "on 2 MiB hugetlb pages, 256 KiB reads, 16 in flight, as the rmai tier maps with map_page 2MiB) from " +
                       where + ", timed by the faulting thread, in turn over " + std::to_string(ring) + " objects at fresh "
                       "offsets, each evicted right before its next fault (as an LRU cache's slots: frames and bytes "
                       "out of the CPU's caches), median of " + std::to_string(per_repeat) +
                       " per size and repeat: " + medians,
                   "per size, the fault minus what the simulator charges it besides its pages (fault_trap + "
                   "fault_handler + region_lookup + nic wakeup, and its transfer on this calibration's nic numbers), "
                   "per 2 MiB page, at least 0; the median over the sizes: the frame's allocation and zeroing, the "
                   "mapping, and the transport writing into frames just zeroed (the sum of the first two, probed "
                   "directly with MADV_POPULATE_WRITE and UFFDIO_CONTINUE, was " +
                       human(direct_huge_map.value, Unit::Time) + ")")};
  s.note("os: region faults -> huge_map " + human(out.huge_map.m.value, Unit::Time) + " (its parts alone: " +
         human(direct_huge_map.value, Unit::Time) + ")");
  return out;
}

}  // namespace rmai::calib
