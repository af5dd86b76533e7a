// `rmai validate --sharing 1,2,4`: the simulator's contention model against the emulator. For each N,
// N `rmai run --mode emul` processes replay at once against ONE memd that runs in a network namespace
// behind a veth pair shaped with tbf (cli/sharing_link.hpp), so that they share a link slower than
// loopback; the simulator runs the same experiment with `nodes: N`, one memory server and the link's
// bandwidth, as measured by a probe, as the NIC's. What is compared is the slowdown against N = 1 of
// the median switch and of the replay, not the absolute times (validate.md, "Sharing"). Both halves
// map the regions with the page validate-sharing.yaml gives (memory.rmai.map_page, 4 KiB there).
//
// Node i of N in the simulator replays the experiment's trace from token i*T/N on (sim/replay.cpp);
// emulated client i replays a trace file that holds those tokens in that order, so both sides see
// the same per-node traces. The clients wait at a start barrier once set up, so that their replays
// start together.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <sstream>

#include "cache/prefetcher.hpp"
#include "calib/fit.hpp"
#include "calib/system.hpp"
#include "cli/progress.hpp"
#include "cli/sharing.hpp"
#include "cli/sharing_link.hpp"
#include "cli/support.hpp"
#include "config/errors.hpp"
#include "config/units.hpp"
#include "emul/control.hpp"
#include "emul/emulation.hpp"
#include "emul/memd_process.hpp"
#include "emul/remote.hpp"
#include "metrics/results.hpp"
#include "posix/errors.hpp"
#include "posix/files.hpp"
#include "posix/process.hpp"
#include "spec/experiment.hpp"
#include "traces/experiment_trace.hpp"

namespace rmai::cli {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The agreement the validation is for: |rel_error| of a slowdown within this for N >= 2. Reported
// only; the command's exit code does not depend on it (like rmai validate's).
constexpr double kBound = 0.15;
constexpr std::uint64_t kMaxNodes = 16;  // clients on this 2-vCPU machine: beyond, it measures the CPU

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<std::uint32_t> parse_nodes(const std::string& text) {
  std::vector<std::uint32_t> out{1};  // N = 1 is the baseline of every slowdown
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    const std::uint64_t n = parse_count("--sharing", item);
    if (n < 1 || n > kMaxNodes)
      throw InputError("--sharing", "'" + item + "': give node counts from 1 to " + std::to_string(kMaxNodes));
    out.push_back(static_cast<std::uint32_t>(n));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// One switch of one node, as switches.csv has it.
struct Span {
  std::uint32_t node;
  double start, end, bytes;
};

std::vector<Span> read_switches(const fs::path& csv, std::optional<std::uint32_t> node) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);  // node,token,layer,expert,tier,start_s,end_s,bytes,faults
  std::vector<Span> out;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) f.push_back(cell);
    if (f.size() < 8) throw std::runtime_error(csv.string() + ": a row without start_s, end_s and bytes: " + line);
    out.push_back({node.value_or(static_cast<std::uint32_t>(std::stoul(f[0]))), std::stod(f[5]), std::stod(f[6]),
                   std::stod(f[7])});
  }
  return out;
}

// What one run (all its nodes) measured.
struct RunMetrics {
  double switch_p50 = 0;   // of every node's switches together, as the simulator's summary pools them
  double switch_p95 = 0;   // how unequal the shares are: the simulator's fair shares make it the p50
  double replay = 0;       // until the last node ended
  double switches = 0;
  double concurrency = 0;  // nodes switching at once, averaged over the time any node switches
  double overlap = 0;      // the time all nodes were active (first switch to last) over the time any was
  double aggregate = 0;    // bytes switched in by all nodes over the replay: what they got of the link
};

RunMetrics measure(const std::vector<Span>& spans, double replay) {
  RunMetrics m;
  m.replay = replay;
  m.switches = double(spans.size());
  std::vector<double> durations;
  std::vector<std::pair<double, double>> intervals;
  std::map<std::uint32_t, std::pair<double, double>> active;
  double bytes = 0;
  for (const auto& s : spans) {
    bytes += s.bytes;
    durations.push_back(s.end - s.start);
    intervals.push_back({s.start, s.end});
    auto [it, fresh] = active.try_emplace(s.node, s.start, s.end);
    if (!fresh) it->second = {std::min(it->second.first, s.start), std::max(it->second.second, s.end)};
  }
  const auto d = metrics::summarize(durations);
  m.aggregate = replay > 0 ? bytes / replay : NAN;
  m.switch_p50 = d.p50;
  m.switch_p95 = d.p95;
  std::sort(intervals.begin(), intervals.end());
  double busy = 0, total = 0, open_start = 0, open_end = -1;
  for (const auto& [a, b] : intervals) {
    total += b - a;
    if (a > open_end) {
      if (open_end > open_start) busy += open_end - open_start;
      open_start = a;
      open_end = b;
    } else {
      open_end = std::max(open_end, b);
    }
  }
  if (open_end > open_start) busy += open_end - open_start;
  m.concurrency = busy > 0 ? total / busy : NAN;
  double first = INFINITY, last = -INFINITY, latest_start = -INFINITY, earliest_end = INFINITY;
  for (const auto& [node, span] : active) {
    first = std::min(first, span.first);
    last = std::max(last, span.second);
    latest_start = std::max(latest_start, span.first);
    earliest_end = std::min(earliest_end, span.second);
  }
  m.overlap = last > first ? std::max(0.0, earliest_end - latest_start) / (last - first) : NAN;
  return m;
}

json summary_of(const fs::path& dir) { return json::parse(slurp(dir / "summary.json")); }

// Node i's share of the simulator's replay: the trace from token i*T/N on, wrapping around
// (cache/replay.hpp), renumbered as one sequence so that it is a valid trace file.
traces::RoutingTrace rotated(const traces::RoutingTrace& trace, std::size_t first) {
  traces::RoutingTrace out(trace.shape());
  const std::size_t tokens = trace.tokens();
  for (std::size_t step = 0; step < tokens; ++step) {
    const std::size_t t = (first + step) % tokens;
    const auto experts = trace.experts(t);
    const auto weights = trace.weights(t);
    out.append({0, static_cast<std::uint32_t>(step), {experts.begin(), experts.end()}, {weights.begin(), weights.end()}});
  }
  return out;
}

// The end of a client's log, for the message of a run that failed.
std::string tail(const fs::path& log) {
  const std::string text = slurp(log);
  return text.size() > 2000 ? "..." + text.substr(text.size() - 2000) : text;
}

class Validation {
 public:
  Validation(const ExperimentArgs& experiment, fs::path out, std::string platform, std::vector<std::uint32_t> nodes,
             double rate, std::size_t runs)
      : x_(experiment), out_(std::move(out)), platform_(std::move(platform)), nodes_(std::move(nodes)), rate_(rate),
        runs_(runs), self_(fs::read_symlink("/proc/self/exe")) {}

  int run() {
    const auto e = spec::load_experiment(x_.file, with(x_.sets, {"mode=emul"}));
    if (e.tier_definition->medium != spec::Medium::RemotePool)
      throw InputError(e.values.child("memory").where("tier"),
                       "'" + e.tier + "' is not served by a memd: --sharing needs a remote pool tier (rmai, page4k)");
    if (e.emul.server)
      throw InputError(e.values.child("emul").where("server"), "--sharing starts its own memd behind the shaped link: leave it out");
    if (e.cache.prefetch != cache::kNoPrefetch)
      throw InputError(e.values.child("cache").where("prefetch"), "the emulator has no prefetcher: use 'none'");
    metrics::check_results_dir(out_, "--out");
    for (const auto& n : nodes_)  // fails before the link is made, as bad input should
      spec::load_experiment(x_.file, with(x_.sets, {"mode=sim", "nodes=" + std::to_string(n), "experts=emulated",
                                                   "platform=" + platform_}));

    // Nothing of a validation that fails half-way shows in --out: the runs write into `staged`.
    posix::StagedDirectory staged(out_);
    target_ = std::exchange(out_, staged.path());
    const auto started = Clock::now();
    SharedLink link(rate_, "--sharing");
    // The secret lives in a memfd that memd and every client inherit (/proc/self/fd/N): nothing on
    // disk, however this command ends (SIGINT, SIGKILL).
    const calib::Fd secret(emul::secret_memfd());
    emul::MemdProcessOptions m;
    m.binary = self_;
    m.experiment = x_.file;
    m.sets = with(x_.sets, {"mode=emul"});
    m.secret_fd = secret.get();
    m.listen = link.memd_address() + ":0";
    m.netns_fd = link.netns_fd();
    emul::MemdProcess memd(m);
    std::cerr << "rmai validate: memd serves at " << memd.address() << " in namespace " << link.name()
              << ", behind " << link.host_link() << " shaped to " << csv_number(rate_ / 1e6)
              << " MB/s\n";
    write_traces(e);

    // Rounds of every N, so that the machine's drift over minutes spreads over all N alike; the probe
    // once per round too.
    const emul::Catalog catalog = emul::catalog_of(e);
    emul::RemoteOptions remote{e.emul.provider, memd.address(), emul::read_secret_file(emul::secret_path(secret.get()))};
    remote.timeout_s = e.emul.timeout_s;
    emul::RemoteSource probe_source(catalog, remote);
    Progress progress("rmai validate --sharing");
    std::map<std::uint32_t, std::vector<RunMetrics>> emul;
    for (std::size_t r = 1; r <= runs_; ++r) {
      probes_.push_back(probe(probe_source, catalog, r == 1));
      std::cerr << "rmai validate: round " << r << " of " << runs_ << ": the link delivers "
                << csv_number(probes_.back() / 1e6) << " MB/s to one client\n";
      for (const auto n : nodes_) {
        progress.note("N = " + std::to_string(n) + ", run " + std::to_string(r) + " of " + std::to_string(runs_) + ", " +
                      clock_text(progress.elapsed_s()) + " elapsed");
        emul[n].push_back(emulate(n, r, memd.address(), secret.get()));
      }
    }
    const double bandwidth = calib::median(probes_);
    std::map<std::uint32_t, RunMetrics> sim;
    for (const auto n : nodes_) sim[n] = simulate(n, bandwidth);
    const std::string stats = link.qdisc_stats();
    write_report(emul, sim, bandwidth, stats, seconds_since(started));
    staged.commit();
    return 0;
  }

 private:
  static std::vector<std::string> with(std::vector<std::string> sets, const std::vector<std::string>& more) {
    sets.insert(sets.end(), more.begin(), more.end());
    return sets;
  }

  fs::path trace_file(std::uint32_t n, std::uint32_t i) const {
    return out_ / "traces" / ("n" + std::to_string(n) + "-node" + std::to_string(i) + ".rmtrace");
  }

  void write_traces(const spec::Experiment& e) {
    const auto trace = traces::experiment_trace(e);
    fs::create_directories(out_ / "traces");
    for (const auto n : nodes_)
      for (std::uint32_t i = 0; i < n; ++i) traces::save_trace(trace_file(n, i), rotated(trace, std::size_t(i) * trace.tokens() / n));
  }

  // What the shaped link delivers to one client: every object read whole through a RemoteSource
  // (the rmai tier's reads: 256 KiB at depth 16) back to back, bytes over time. The first round
  // reads them once more before, since a new connection's first reads are slow.
  static double probe(emul::RemoteSource& source, const emul::Catalog& catalog, bool warm_up) {
    struct Free {
      void operator()(std::byte* p) const { std::free(p); }
    };
    std::unique_ptr<std::byte, Free> buffer(static_cast<std::byte*>(std::aligned_alloc(4096, catalog.object_bytes())));
    if (!buffer) throw std::bad_alloc();
    const std::span<std::byte> span(buffer.get(), catalog.object_bytes());
    source.register_buffer(span);
    const auto pass = [&] {
      for (const auto& o : catalog.objects()) source.read(o.id, 0, span);
    };
    if (warm_up) pass();
    const auto start = Clock::now();
    pass();
    const double seconds = seconds_since(start);
    source.deregister_buffer(span);
    return double(catalog.total_bytes()) / seconds;
  }

  RunMetrics emulate(std::uint32_t n, std::size_t round, const std::string& server, int secret_fd) {
    const fs::path dir = out_ / "emul" / ("n" + std::to_string(n)) / ("run" + std::to_string(round));
    fs::create_directories(dir);
    int ready[2], start[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) posix::throw_errno("pipe2");
    if (::pipe2(start, O_CLOEXEC) != 0) posix::throw_errno("pipe2");
    struct Fds {
      std::vector<int*> fds;
      ~Fds() {
        for (int* fd : fds)
          if (*fd >= 0) ::close(*fd);
      }
    } close_all{{&ready[0], &ready[1], &start[0], &start[1]}};
    std::vector<pid_t> pids;
    std::vector<std::optional<int>> codes(n);
    const auto log = [&](std::uint32_t i) { return dir / ("node" + std::to_string(i) + ".log"); };
    for (std::uint32_t i = 0; i < n; ++i) {
      std::vector<std::string> args{self_.string(), "run", x_.file};
      for (const auto& s : x_.sets) args.push_back("--set=" + s);
      for (const auto& s : {"mode=emul", "nodes=1"}) args.push_back(std::string("--set=") + s);
      args.push_back("--set=emul.server=" + server);
      args.push_back("--set=emul.secret_file=" + emul::secret_path(secret_fd).string());
      args.push_back("--set=trace.file=" + trace_file(n, i).string());
      args.insert(args.end(), {"--out", (dir / ("node" + std::to_string(i))).string(), "--ready-fd",
                               std::to_string(ready[1]), "--start-fd", std::to_string(start[0])});
      posix::SpawnOptions spawn;
      spawn.search_path = false;
      spawn.output = log(i);
      spawn.null_stdin = true;
      spawn.inherit_fds = {ready[1], start[0], secret_fd};
      try {
        pids.push_back(posix::spawn(args, spawn));
      } catch (...) {
        // The clients started so far would see the start pipe close and replay with nobody waiting
        // for them: they are stopped first.
        for (const pid_t pid : pids) ::kill(pid, SIGTERM);
        for (const pid_t pid : pids) posix::wait_exit(pid);
        throw;
      }
    }
    // Our copies go, so that only the clients hold them: the start pipe's write end is ours alone.
    ::close(ready[1]);
    ready[1] = -1;
    ::close(start[0]);
    start[0] = -1;
    // Stops the other clients; the error names what went wrong with client i.
    const auto failed = [&](std::uint32_t i, const std::string& what) {
      for (std::uint32_t k = 0; k < n; ++k)
        if (!codes[k]) ::kill(pids[k], SIGTERM);
      for (std::uint32_t k = 0; k < n; ++k)
        if (!codes[k]) posix::wait_exit(pids[k]);
      return std::runtime_error("client " + std::to_string(i) + " of N = " + std::to_string(n) + " " + what +
                                "; the end of " + log(i).string() + ":\n" + tail(log(i)));
    };
    const auto exit_text = [](int code) { return "failed (exit " + std::to_string(code) + ")"; };
    // Every client set up (its line on the ready pipe), or one dead first.
    std::uint32_t lines = 0;
    const auto deadline = Clock::now() + std::chrono::minutes(10);
    while (lines < n) {
      if (Clock::now() > deadline) throw failed(0, "and the others were not all set up after 10 minutes");
      pollfd p{ready[0], POLLIN, 0};
      if (::poll(&p, 1, 200) > 0) {
        char buffer[64];
        const ssize_t got = ::read(ready[0], buffer, sizeof buffer);
        for (ssize_t k = 0; k < got; ++k) lines += buffer[k] == '\n';
      }
      for (std::uint32_t i = 0; i < n; ++i) {
        int status = 0;
        if (codes[i] || ::waitpid(pids[i], &status, WNOHANG) != pids[i]) continue;
        codes[i] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        throw failed(i, exit_text(*codes[i]) + " before the start");
      }
    }
    ::close(start[1]);  // every client's read sees the end of file at once: go
    start[1] = -1;
    for (std::uint32_t i = 0; i < n; ++i) {
      codes[i] = posix::wait_exit(pids[i]);
      if (*codes[i] != 0) throw failed(i, exit_text(*codes[i]));
    }
    std::vector<Span> spans;
    double replay = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      const fs::path node = dir / ("node" + std::to_string(i));
      replay = std::max(replay, summary_of(node)["simulated_time_s"].get<double>());
      for (const auto& s : read_switches(node / "switches.csv", i)) spans.push_back(s);
    }
    return measure(spans, replay);
  }

  RunMetrics simulate(std::uint32_t n, double bandwidth) {
    const fs::path dir = out_ / "sim" / ("n" + std::to_string(n));
    std::vector<std::string> args{self_.string(), "run", x_.file};
    for (const auto& s : x_.sets) args.push_back("--set=" + s);
    for (const auto& s : std::vector<std::string>{
             "mode=sim", "experts=emulated", "platform=" + platform_, "platform.memory_servers=1",
             "platform.nic.bandwidth=" + units::format(bandwidth, units::Quantity::Bandwidth), "nodes=" + std::to_string(n)})
      args.push_back("--set=" + s);
    args.insert(args.end(), {"--out", dir.string()});
    posix::SpawnOptions spawn;
    spawn.search_path = false;
    spawn.output = out_ / "sim" / ("n" + std::to_string(n) + ".log");
    fs::create_directories(out_ / "sim");
    const int code = posix::wait_exit(posix::spawn(args, spawn));
    if (code != 0)
      throw std::runtime_error("the simulation of N = " + std::to_string(n) + " failed (exit " + std::to_string(code) +
                               "): " + tail(*spawn.output));
    return measure(read_switches(dir / "switches.csv", std::nullopt), summary_of(dir)["simulated_time_s"].get<double>());
  }

  void write_report(const std::map<std::uint32_t, std::vector<RunMetrics>>& emul,
                    const std::map<std::uint32_t, RunMetrics>& sim, double bandwidth, const std::string& stats,
                    double wall) {
    std::string csv = "nodes,metric,emul,sim,rel_error,emul_min,emul_max,runs\n";
    const auto row = [&](std::uint32_t n, const std::string& metric, double a, double b, double lo, double hi,
                         std::size_t runs) {
      const double rel = a != 0 ? (b - a) / a : (b == 0 ? 0.0 : NAN);
      csv += std::to_string(n) + "," + metric + "," + csv_number(a) + "," + csv_number(b) + "," + csv_number(rel) + "," + csv_number(lo) +
             "," + csv_number(hi) + "," + std::to_string(runs) + "\n";
      return rel;
    };
    const auto values = [](const std::vector<RunMetrics>& runs, double RunMetrics::*field) {
      std::vector<double> v;
      for (const auto& r : runs) v.push_back(r.*field);
      return v;
    };
    const auto lo = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
    const auto hi = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
    row(1, "link_bandwidth_Bps", calib::median(probes_), bandwidth, lo(probes_), hi(probes_), probes_.size());
    std::string verdict;
    bool within = true;
    for (const auto n : nodes_) {
      const auto& runs = emul.at(n);
      const RunMetrics& s = sim.at(n);
      for (const auto& [name, field] : std::vector<std::pair<std::string, double RunMetrics::*>>{
               {"switch_p50_s", &RunMetrics::switch_p50},
               {"switch_p95_s", &RunMetrics::switch_p95},
               {"replay_s", &RunMetrics::replay},
               {"expert_switches", &RunMetrics::switches},
               {"switch_concurrency", &RunMetrics::concurrency},
               {"replay_overlap", &RunMetrics::overlap},
               {"aggregate_Bps", &RunMetrics::aggregate}}) {
        const auto v = values(runs, field);
        row(n, name, calib::median(v), s.*field, lo(v), hi(v), v.size());
      }
      // The slowdowns: each N's median over N = 1's median; the spread is each run's over that median.
      for (const auto& [name, field] : std::vector<std::pair<std::string, double RunMetrics::*>>{
               {"switch_p50_slowdown", &RunMetrics::switch_p50}, {"replay_slowdown", &RunMetrics::replay}}) {
        const double base = calib::median(values(emul.at(1), field));
        const auto v = values(runs, field);
        const double rel = row(n, name, calib::median(v) / base, s.*field / sim.at(1).*field, lo(v) / base, hi(v) / base, v.size());
        if (n >= 2) {
          within = within && std::abs(rel) <= kBound;
          verdict += "  N = " + std::to_string(n) + " " + name + ": emul " + csv_number(calib::median(v) / base) + ", sim " +
                     csv_number(s.*field / sim.at(1).*field) + " (" + csv_number(rel * 100) + "%)\n";
        }
      }
      // What each node beyond the first adds to the median switch: the contention alone, without
      // the per-switch costs that do not grow with N (where the two sides differ, validate.md).
      if (n >= 2) {
        const double base = calib::median(values(emul.at(1), &RunMetrics::switch_p50));
        const auto v = values(runs, &RunMetrics::switch_p50);
        const auto added = [&](double p50) { return (p50 - base) / (n - 1); };
        row(n, "switch_p50_added_per_node_s", added(calib::median(v)), (s.switch_p50 - sim.at(1).switch_p50) / (n - 1),
            added(lo(v)), added(hi(v)), v.size());
      }
    }
    std::ostringstream link;
    link << "tbf rate " << csv_number(rate_) << " B/s; measured by the probe (B/s, one per round):";
    for (const double p : probes_) link << " " << csv_number(p);
    link << "\nsimulated nic.bandwidth " << csv_number(bandwidth) << " B/s (the median)\nwall time " << csv_number(wall)
         << " s\nqdisc of memd's side after every run:\n" << stats << "\n";
    posix::write_files_atomic({{out_ / "sharing-link.txt", link.str()}, {out_ / "sharing.csv", csv}});
    std::cout << csv;
    std::cerr << "rmai validate: the slowdowns " << (within ? "agree" : "do NOT agree") << " within "
              << csv_number(kBound * 100) << "% for every N >= 2:\n"
              << verdict << "rmai validate: " << csv_number(wall) << " s; link details in " << (target_ / "sharing-link.txt").string()
              << "\n";
    // Where the clients together got clearly less than the link gives one of them, the link was not
    // what they shared (on this 2-vCPU machine: the CPU, which N busy-polling clients, memd and the
    // kernel's TCP share); the simulator knows only the link.
    for (const auto n : nodes_) {
      const double got = calib::median(values(emul.at(n), &RunMetrics::aggregate));
      if (n >= 2 && got < 0.9 * calib::median(probes_))
        std::cerr << "rmai validate: at N = " << n << " the clients together got " << csv_number(got / 1e6)
                  << " MB/s, less than the " << csv_number(calib::median(probes_) / 1e6)
                  << " MB/s the link gives one: the link was not the bottleneck (the CPU?); try a lower --link-rate\n";
    }
    if (const auto at = stats.find("dropped "); at != std::string::npos && stats.compare(at, 10, "dropped 0,") != 0)
      std::cerr << "rmai validate: the link dropped packets (TCP timeouts are then in the times): " << stats << "\n";
  }

  ExperimentArgs x_;
  fs::path out_;     // where the runs write: the staging directory of target_ once run() started
  fs::path target_;  // --out
  std::string platform_;
  std::vector<std::uint32_t> nodes_;
  double rate_;
  std::size_t runs_;
  fs::path self_;
  std::vector<double> probes_;
};

int descriptor(const std::string& option, const std::string& text) {
  if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos)
    throw InputError(option, "'" + text + "' is not a file descriptor number");
  const int fd = std::stoi(text);
  if (::fcntl(fd, F_GETFD) < 0) throw InputError(option, "descriptor " + text + " is not open");
  return fd;
}

}  // namespace

void add_sharing_options(CLI::App* app, SharingOptions& o) {
  CLI::Option* sharing =
      add_value(app, "--sharing", o.nodes,
                "instead of the tiers: N emulated nodes sharing one memd through a shaped link against the simulator's "
                "N nodes, for each N given (1 is always run); DIR/sharing.csv. Root only.")
          ->type_name("N1,N2");
  // Without --sharing they would be ignored in silence: refused instead.
  add_value(app, "--link-rate", o.link_rate, "with --sharing: the link's tbf rate (default 250MBps, i.e. 2 Gbps)")
      ->type_name("RATE")
      ->needs(sharing);
  add_value(app, "--sharing-runs", o.runs, "with --sharing: emulated runs per N, for the medians (default 3)")
      ->type_name("R")
      ->needs(sharing);
}

int validate_sharing(const ExperimentArgs& experiment, const fs::path& out, const std::string& platform,
                     const SharingOptions& o, bool tiers_given) {
  if (tiers_given) throw InputError("--tiers", "not with --sharing, which validates the experiment's memory.tier");
  const auto nodes = parse_nodes(o.nodes);
  double rate = 0;
  try {
    rate = units::parse_bandwidth(o.link_rate);
  } catch (const std::invalid_argument& error) {
    throw InputError("--link-rate", error.what());
  }
  if (!(rate >= 1e6 && rate <= 1e11)) throw InputError("--link-rate", "'" + o.link_rate + "': give 1MBps to 100GBps");
  const std::uint64_t runs = parse_count("--sharing-runs", o.runs);
  if (runs < 1 || runs > 100) throw InputError("--sharing-runs", "give 1 to 100 runs");
  return Validation(experiment, out, platform, nodes, rate, runs).run();
}

void add_start_barrier_args(CLI::App* app, StartBarrier& b) {
  add_value(app, "--ready-fd", b.ready_fd,
            "with --mode emul: once set up, write a line to descriptor W and close it (then wait at --start-fd)")
      ->type_name("W");
  add_value(app, "--start-fd", b.start_fd,
            "with --mode emul: start replaying only when descriptor R reaches end of file (rmai validate --sharing "
            "starts its clients together so)")
      ->type_name("R");
}

std::function<void()> start_barrier(const StartBarrier& b) {
  if (b.ready_fd.empty() && b.start_fd.empty()) return {};
  if (b.ready_fd.empty() || b.start_fd.empty())
    throw InputError(b.ready_fd.empty() ? "--start-fd" : "--ready-fd", "give --ready-fd and --start-fd together");
  const int ready = descriptor("--ready-fd", b.ready_fd);
  const int start = descriptor("--start-fd", b.start_fd);
  return [ready, start] {
    const char line = '\n';
    while (::write(ready, &line, 1) < 0 && errno == EINTR) {
    }
    ::close(ready);
    char byte;
    for (ssize_t n; (n = ::read(start, &byte, 1)) != 0;)
      if (n < 0 && errno != EINTR) break;
    ::close(start);
  };
}

}  // namespace rmai::cli
