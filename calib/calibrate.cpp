#include "calib/calibrate.hpp"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <memory>

#include "calib/preset.hpp"
#include "calib/probes.hpp"
#include "config/errors.hpp"
#include "config/tree.hpp"
#include "emul/control.hpp"
#include "emul/fabric.hpp"
#include "emul/huge_pages.hpp"
#include "emul/memd_process.hpp"
#include "emul/region.hpp"
#include "spec/schemas.hpp"

namespace rmai::calib {
namespace fs = std::filesystem;
namespace {

// The objects rmai calibrate's own memd serves (and the file to start a remote one with).
fs::path memd_experiment() { return config::home_dir() / "calib" / "memd.yaml"; }

std::uint64_t mem_total_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  while (in >> key >> kib) {
    if (key == "MemTotal:") return kib * 1024;
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

std::string hostname() {
  char name[256] = "";
  ::gethostname(name, sizeof name - 1);
  return name;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &tm);
  return text;
}

// The nvme preset of the shipped default platform: what a preset written without --disk names.
std::string default_nvme() {
  const fs::path file = config::preset_file("platforms", "default");
  const auto v = config::resolve(spec::schema::platform(), {{config::load_yaml_file(file), file.string()}}, "platform");
  return v.child("nvme").preset();
}

// Everything the probes need, checked before the first one runs. The huge pages stay reserved
// for the run (given back when `reservation` goes).
void check(const Options& o, std::unique_ptr<emul::HugePageReservation>& reservation, std::string& secret) {
  if (o.provider != "tcp" && o.provider != "shm" && o.provider != "verbs")
    throw InputError("--provider", "unknown provider \"" + o.provider + "\" (tcp, shm or verbs)");
  if (const auto why = emul::provider_unavailable_reason(o.provider); !why.empty())
    throw InputError("--provider", o.provider + " is not available here: " + why);
  if (o.repeats == 0 || o.repeats > kMaxRepeats)
    throw InputError("--repeats", "must be 1 to " + std::to_string(kMaxRepeats));
  if (o.server.has_value() != o.secret_file.has_value())
    throw InputError(o.server ? "--secret-file" : "--server", "--server and --secret-file go together (a memd and its secret)");
  if (o.server) {
    emul::parse_host_port(*o.server, "--server");
    try {
      secret = emul::read_secret_file(*o.secret_file);
    } catch (const InputError& e) {
      throw InputError("--secret-file", e.what());
    }
  } else if (!fs::is_regular_file(memd_experiment())) {
    throw std::runtime_error("the calibration's memd experiment is missing: " + memd_experiment().string());
  }
  if (o.disk) check_disk_dir(*o.disk, "--disk");
  if (o.server) served_catalog({o.provider, *o.server, secret, false});  // reachable, and fit to calibrate with
  if (const auto why = emul::userfaultfd_unavailable_reason(); !why.empty())
    throw InputError("userfaultfd", why + ": rmai calibrate measures the emulator's fault path, which needs it");
  reservation = std::make_unique<emul::HugePageReservation>(kHugePagesNeeded);
  if (!reservation->ok())
    throw InputError("huge pages", "rmai calibrate measures mapping and evicting 2 MiB hugetlb pages (the emulator's rmai "
                                   "layout) and needs " + std::to_string(kHugePagesNeeded) +
                                   ": run it as root (it reserves them for the run) or reserve them (vm.nr_hugepages)");
}

}  // namespace

std::string calibrate(const Options& o, const std::function<void(const std::string&)>& note) {
  const double start = now_s();
  std::unique_ptr<emul::HugePageReservation> reservation;
  std::string secret;
  check(o, reservation, secret);
  Settings s;
  s.repeats = o.repeats;
  s.quick = o.quick;
  s.note = note;

  const MemoryResults memory = probe_memory(s);
  const double dram_latency = find(memory.dram, "latency").value;
  Entries os = probe_os(s);

  NicResults nic;
  {
    Transport t;
    t.provider = o.provider;
    std::unique_ptr<emul::MemdProcess> memd;
    struct Descriptor {
      int fd = -1;
      ~Descriptor() {
        if (fd >= 0) ::close(fd);
      }
    } secret_fd;
    if (o.server) {
      t.server = *o.server;
      t.secret = secret;
      t.local = false;
    } else {
      // Its secret lives in a memfd both processes hold: nothing on disk, however this run ends.
      secret_fd.fd = emul::secret_memfd();
      emul::MemdProcessOptions m;
      m.experiment = memd_experiment();
      m.sets = {"emul.provider=" + o.provider};
      m.secret_fd = secret_fd.fd;
      note("nic: starting memd (" + memd_experiment().string() + ")");
      memd = std::make_unique<emul::MemdProcess>(m);
      t.server = memd->address();
      t.secret = emul::read_secret_file(emul::secret_path(secret_fd.fd));
    }
    nic = probe_nic(s, t, os, memory.dram);
  }
  os.push_back(nic.swap_in_path);
  for (Entry& entry : os)
    if (entry.key == nic.huge_map.key) entry = nic.huge_map;

  std::optional<DiskResults> disk;
  if (o.disk) disk = probe_disk(s, *o.disk, dram_latency);

  Preset p;
  const double wall = now_s() - start;
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.0f s", wall);
  p.header = {
      "Platform preset written by `rmai calibrate` on " + hostname() + ", " + utc_now() + ", in " + seconds + ":",
      "  " + o.command,
      "",
      "Every number was measured on this machine. Its comment says the probe (what was measured and how), how the "
      "value follows from it where it is derived, the fit and its residual (RMS relative error of the line through "
      "the per-size medians) where it comes from a fit, and the median of the repeats with their spread (min - max). "
      "Timings on a shared or virtual machine move with its load: compare designs by ratio, and run it again to see "
      "how much they move. The transport: " + nic.describe + ". Regenerate it rather than editing it.",
  };
  p.description = "calibrated on " + hostname() + " by rmai calibrate (" + o.provider + (o.quick ? ", quick" : "") + ", " +
                  utc_now() + ")";
  Measurement servers;
  servers.value = 1;
  servers.probe = o.server ? "one memd, at " + *o.server : "one memd, rmai calibrate's child on loopback, as rmai run --mode emul starts one";
  Measurement server_memory;
  server_memory.value = double(mem_total_bytes());
  server_memory.probe = o.server ? "not measured: MemTotal of THIS machine (/proc/meminfo) as a stand-in; set it to what the "
                                   "memory server donates (--set platform.server_memory=...)"
                                 : "MemTotal in /proc/meminfo: the loopback memd holds the pool in this machine's memory";
  p.top = {{"memory_servers", Unit::Count, servers}, {"server_memory", Unit::Bytes, server_memory}};
  p.components.push_back({"nic", "the emulator's transport: " + nic.describe, nic.nic, "", ""});
  p.components.push_back({"pcie", "memcpy into a device buffer: the emulator's stand-in for the copy to HBM", memory.pcie, "", ""});
  p.components.push_back({"gpu", "", {}, "emulated-none",
                          "not measured: the emulator computes nothing and has no GPU (see the preset)"});
  Entries dram = memory.dram;
  Measurement dram_capacity;
  dram_capacity.value = double(mem_total_bytes());
  dram_capacity.probe = "MemTotal in /proc/meminfo";
  dram.push_back({"capacity", Unit::Bytes, dram_capacity});
  p.components.push_back({"dram", "this machine's memory, as the emulator's threads see it", dram, "", ""});
  p.components.push_back({"cxl", "", {}, "cxl-expander-x8",
                          "not measured: the emulator has no CXL tier; a preset, so that the schema is complete"});
  if (disk)
    p.components.push_back({"nvme", "the disk holding " + o.disk->string() + " as O_DIRECT sees it", disk->nvme, "",
                            "read_ahead_kb of that device (what disk-mmap's readahead reads; the disk-mmap tier's "
                            "readahead parameter should say the same): " + disk->read_ahead});
  else
    p.components.push_back({"nvme", "", {}, default_nvme(),
                            "not measured (no --disk DIR): the default platform's drive; rmai calibrate --disk DIR "
                            "measures the disk holding DIR"});
  p.components.push_back({"os", "this machine's kernel on the paging paths, as the emulator meets it", os, "", ""});
  return render(p);
}

}  // namespace rmai::calib
