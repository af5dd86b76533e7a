// `rmai sweep`: runs the points of a parameter sweep (spec/sweep.hpp), each as a separate
// `rmai run` process so that one crashing or failing point cannot take the others down, resumes
// interrupted sweeps, joins the results into one tidy CSV, or emits a Slurm job array instead.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/progress.hpp"
#include "cli/support.hpp"
#include "config/errors.hpp"
#include "config/tree.hpp"
#include "posix/errors.hpp"
#include "posix/files.hpp"
#include "posix/process.hpp"
#include "sim/replay.hpp"
#include "metrics/results.hpp"
#include "spec/experiment.hpp"
#include "spec/schemas.hpp"
#include "spec/sweep.hpp"

namespace rmai::cli {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // keeps summary.json's key order for the CSV columns
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kDescription =
    "Run every point of the experiment's sweep (the cartesian product of its `sweep:` block and the --sweep "
    "options; the first key varies slowest) as a separate `rmai run` into DIR/p0000, DIR/p0001, ... (DIR "
    "defaults to results/<name>), at most N at once, then join the points into DIR/results.csv. Run it again "
    "to resume: finished points are not run again. `rmai sweep --collect DIR` joins a directory's points only.";

struct Options {
  std::string target;  // EXP.yaml, or DIR with --collect
  std::vector<std::string> sets, sweeps;
  bool quick = false, collect = false;
  std::string jobs_text, point_text, max_points_text;
  unsigned jobs = 0;  // 0: the number of cores
  std::string out, emit;
  std::string switches;  // --switches, passed to every point's rmai run (empty: its default)
  std::optional<std::size_t> point;
};

// What the parser leaves to be checked: numbers, and the options that exclude each other.
void check(Options& o) {
  if (!o.jobs_text.empty()) {
    const std::uint64_t jobs = parse_count("--jobs", o.jobs_text);
    if (jobs > 1024) throw InputError("--jobs", "at most 1024 points at once");
    o.jobs = static_cast<unsigned>(jobs);
    if (o.jobs == 0) throw InputError("--jobs", "must be at least 1");
  }
  if (!o.point_text.empty()) o.point = parse_count("--point", o.point_text);
  if (!o.switches.empty()) metrics::parse_switch_selection(o.switches, "--switches");  // refused before any point runs
  if (!o.max_points_text.empty() && parse_count("--max-points", o.max_points_text) == 0)
    throw InputError("--max-points", "must be at least 1");
  if (!o.emit.empty() && o.emit != "slurm") throw InputError("--emit", "unknown target \"" + o.emit + "\" (slurm)");
  if (o.target.empty() && !(o.collect && !o.out.empty())) throw InputError("", "no experiment file given (rmai sweep --help)");
  if (!o.emit.empty() && (o.point || o.collect)) throw InputError("--emit", "goes with neither --point nor --collect");
}

int sweep(Options& o);

}  // namespace

void add_sweep_command(CLI::App& root) {
  const auto o = std::make_shared<Options>();
  CLI::App* app = add_command(root, "sweep", "Run every point of a sweep, one `rmai run` each; results in DIR/results.csv",
                              [o] { return sweep(*o); });
  app->add_option("EXP.yaml", o->target, "experiment file (or the sweep directory with --collect)");
  add_values(app, "--sweep", o->sweeps, "add a dimension, or replace a key's values (repeatable)")
      ->type_name("KEY=V1,V2,...");
  add_values(app, "--set", o->sets, "override a key of the experiment in every point (repeatable)")
      ->type_name("KEY=VALUE");
  app->add_flag("--quick", o->quick, "apply the YAML's `quick:` block (overrides and shorter value lists)");
  add_value(app, "--jobs", o->jobs_text, "points run at once (default: the number of cores)")->type_name("N");
  add_value(app, "--out", o->out, "the sweep directory (default results/<name>)")->type_name("DIR");
  add_value(app, "--emit", o->emit, "write DIR/sweep.slurm, a Slurm job array with one task per point, instead of running")
      ->type_name("slurm");
  add_value(app, "--switches", o->switches,
            "rows of each point's switches.csv: all (default), sample:N, none, each optionally ,zstd (rmai run --switches)")
      ->type_name("all|sample:N|none[,zstd]");
  add_value(app, "--point", o->point_text, "run point I only (what each Slurm task does)")->type_name("I");
  app->add_flag("--collect", o->collect, "join DIR's points into DIR/results.csv without running anything");
  add_value(app, "--max-points", o->max_points_text,
            "refuse a sweep of more points than this (default " + std::to_string(spec::kMaxSweepPoints) + ")")
      ->type_name("N");
  app->footer(std::string(kDescription) + "\nExit codes: 0 all points finished, 1 some point failed or is missing, 2 bad input.");
}

namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The value of an #SBATCH line. sbatch splits these lines at whitespace, takes the rest of a line
// after an unquoted '#' as a comment and reads a backslash as an escape: the value goes in double
// quotes, with '"' and backslashes escaped.
std::string sbatch_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// --- sweep.json: what the directory holds, to resume it and to collect it -------------------------

struct PointRecord {
  std::string name;
  std::vector<std::string> assignments;
};

json sweep_doc(const fs::path& experiment, bool quick, const std::vector<std::string>& sets,
               const std::vector<spec::SweepPoint>& points) {
  json doc;
  doc["schema"] = 1;
  doc["experiment"] = experiment.string();
  doc["quick"] = quick;
  doc["sets"] = sets;  // the quick block's and --set overrides, applied before each point's own
  doc["points"] = json::array();
  for (const auto& p : points) doc["points"].push_back({{"name", p.name}, {"set", p.assignments}});
  return doc;
}

json read_doc(const fs::path& dir) {
  const fs::path file = dir / "sweep.json";
  if (!fs::is_regular_file(file)) throw InputError(file.string(), "not found (not a sweep directory?)");
  try {
    return json::parse(slurp(file));
  } catch (const json::exception& e) {
    throw InputError(file.string(), std::string("malformed: ") + e.what());
  }
}

std::vector<PointRecord> points_of(const json& doc, const fs::path& dir) {
  std::vector<PointRecord> points;
  try {
    for (const auto& p : doc.at("points"))
      points.push_back({p.at("name").get<std::string>(), p.at("set").get<std::vector<std::string>>()});
  } catch (const json::exception& e) {
    throw InputError((dir / "sweep.json").string(), std::string("malformed: ") + e.what());
  }
  return points;
}

// Records the sweep in DIR, or checks that DIR already holds this very sweep (then it is resumed).
void claim(const fs::path& dir, const json& doc) {
  const fs::path file = dir / "sweep.json";
  if (fs::exists(file)) {
    json old;
    try {
      old = json::parse(slurp(file));
    } catch (const json::exception&) {
    }
    if (old != doc) throw InputError("", dir.string() + " holds a different sweep; use another --out");
    return;
  }
  fs::create_directories(dir);
  posix::write_file_atomic(file, doc.dump(2) + "\n");
}

// --- results.csv ---------------------------------------------------------------------------------

void flatten(const json& j, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) flatten(value, prefix.empty() ? key : prefix + "." + key, out);
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i) flatten(j[i], prefix + "." + std::to_string(i), out);
  } else if (j.is_string()) {
    out.emplace_back(prefix, j.get<std::string>());
  } else {
    out.emplace_back(prefix, j.is_null() ? "" : j.dump());  // numbers as summary.json writes them
  }
}

// The line of a point's output that says what went wrong: rmai's own message, else the first line.
std::string first_error_of(const std::string& log) {
  std::istringstream in(log);
  std::string first;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("rmai: error: ", 0) == 0 || line.rfind("rmai: failed: ", 0) == 0) return line.substr(6);
    if (first.empty() && line.find_first_not_of(" \t\r") != std::string::npos) first = line;
  }
  return first.empty() ? "failed without a message" : first;
}
std::string first_error(const fs::path& log) { return first_error_of(slurp(log)); }

// The lock of a point (posix::FileLock), held by whoever writes the point: the sweep from before it
// touches the point until its last write, and the point's `rmai run`, which inherits it, for as
// long as that run lives, even when the sweep that started it is gone.
fs::path lock_of(const fs::path& pdir) { return pdir / ".lock"; }

// Why a point cannot be started or collected now, or "" when nobody writes it.
std::string busy_reason(const fs::path& pdir) {
  const auto holder = posix::holder_of(lock_of(pdir));
  if (!holder) return "";
  return "busy: " + (*holder > 0 ? "PID " + std::to_string(*holder) : std::string("another process")) +
         " is still writing it (" + lock_of(pdir).string() + ")";
}

// The parameter of a swept key when it has a unit (bytes, bandwidth, time).
const config::Param* unit_param(const std::string& key) {
  const config::Param* p = config::find_param(spec::schema::experiment(), key);
  const bool unit = p && (p->kind == config::Kind::Bytes || p->kind == config::Kind::Bandwidth || p->kind == config::Kind::Time);
  return unit ? p : nullptr;
}
bool has_unit(const std::string& key) { return unit_param(key) != nullptr; }

// `value` of `key` in SI base units (bytes, bytes/s, s; a keyword such as "expert" is 0), as
// summary.json writes numbers; empty when it does not parse (its point failed validation).
std::string in_si_units(const std::string& key, const std::string& value) {
  try {
    return json(config::parse_number(*unit_param(key), value)).dump();
  } catch (const std::invalid_argument&) {
    return "";
  }
}

// Failed points whose error.log could not be written (a full disk): name -> what went wrong.
using Unkept = std::map<std::string, std::string>;

// Joins DIR/sweep.json and the point directories into DIR/results.csv; reports failed and missing
// points on stderr. Returns the exit code: 1 if a point failed or is missing.
int collect(const fs::path& dir, const Unkept& unkept = {}) {
  const auto points = points_of(read_doc(dir), dir);
  struct Row {
    std::string status;
    std::vector<std::pair<std::string, std::string>> metrics;
  };
  std::vector<Row> rows;
  std::vector<std::string> params, metrics;
  std::set<std::string> seen_params, seen_metrics;
  std::vector<std::string> problems;
  std::size_t ok = 0, failed = 0, missing = 0;
  for (const auto& p : points) {
    for (const auto& a : p.assignments)
      if (const std::string key = a.substr(0, a.find('=')); seen_params.insert(key).second) params.push_back(key);
    const fs::path pdir = dir / p.name;
    Row row;
    std::string problem;
    if (const std::string busy = busy_reason(pdir); !busy.empty()) {
      row.status = "missing";
      problem = busy;
    } else if (fs::exists(pdir / "summary.json")) {
      try {
        flatten(json::parse(slurp(pdir / "summary.json")), "", row.metrics);
        row.status = "ok";
      } catch (const json::exception& e) {
        row.metrics.clear();
        problem = std::string("unreadable summary.json: ") + e.what();
      }
    } else if (fs::exists(pdir / "error.log")) {
      problem = first_error(pdir / "error.log");
    } else if (unkept.count(p.name)) {
      problem = unkept.at(p.name) + " (its error.log could not be written)";
    } else {
      row.status = "missing";
      problem = "missing (not run yet, or still running)";
    }
    if (row.status.empty()) row.status = "failed";
    (row.status == "ok" ? ok : row.status == "failed" ? failed : missing)++;
    if (!problem.empty()) problems.push_back(p.name + " (" + config::join(p.assignments) + "): " + problem);
    for (const auto& [key, value] : row.metrics)
      if (seen_metrics.insert(key).second) metrics.push_back(key);
    rows.push_back(std::move(row));
  }

  // Beside each parameter with a unit, its value in SI base units, so that readers (plots/) need no
  // unit parser of their own.
  std::vector<std::string> columns;
  for (const auto& key : params) {
    columns.push_back("param." + key);
    if (has_unit(key)) columns.push_back("param_si." + key);
  }
  std::string csv = "point,status";
  for (const auto& column : columns) csv += "," + csv_field(column);
  for (const auto& key : metrics) csv += "," + csv_field(key);
  csv += "\n";
  for (std::size_t i = 0; i < points.size(); ++i) {
    std::map<std::string, std::string> values(rows[i].metrics.begin(), rows[i].metrics.end());
    for (const auto& a : points[i].assignments) {
      const std::string key = a.substr(0, a.find('=')), value = a.substr(a.find('=') + 1);
      values["param." + key] = value;
      if (has_unit(key)) values["param_si." + key] = in_si_units(key, value);
    }
    csv += points[i].name + "," + rows[i].status;
    for (const auto& column : columns) csv += "," + csv_field(values[column]);
    for (const auto& key : metrics) csv += "," + csv_field(values[key]);
    csv += "\n";
  }
  // The report first: a results.csv that cannot be written (a full disk) must not hide it.
  std::cerr << "rmai: sweep: " << points.size() << " points: " << ok << " ok, " << failed << " failed, " << missing
            << " missing\n";
  for (const auto& problem : problems) std::cerr << "  " << problem << "\n";
  posix::write_file_atomic(dir / "results.csv", csv);
  std::cerr << "rmai: sweep: results in " << (dir / "results.csv").string() << "\n";
  return failed + missing > 0 ? 1 : 0;
}

// --- validation ------------------------------------------------------------------------------------

// A bad value in the main part of the YAML (every point fails), or a swept value that no point
// accepts (a typo in a value list), stops the sweep before hours of runs. A combination that alone
// is invalid (say, a cache larger than one of the swept models) only fails its point.
void refuse_hopeless(const spec::SweepSpec& spec, const std::vector<spec::SweepPoint>& points,
                     const std::vector<std::string>& invalid) {
  std::size_t bad = 0;
  for (const auto& error : invalid) bad += !error.empty();
  if (bad == 0) return;
  if (bad == points.size()) throw InputError("", invalid[0]);
  for (std::size_t d = 0; d < spec.dimensions.size(); ++d)
    for (std::size_t step = 0; step < spec.dimensions[d].values.size(); ++step) {
      std::string first;
      bool all_bad = true;
      for (std::size_t i = 0; i < points.size() && all_bad; ++i) {
        if (points[i].steps[d] != step) continue;
        all_bad = !invalid[i].empty();
        if (first.empty()) first = invalid[i];
      }
      if (all_bad)
        throw InputError(spec.dimensions[d].where,
                         "value " + config::join(spec.dimensions[d].values[step]) + " fails in every point: " + first);
    }
}

// --- running ---------------------------------------------------------------------------------------

// Progress on stderr (cli/progress.hpp): a bar redrawn in place on a terminal, else one line per
// finished point.
class SweepProgress {
 public:
  SweepProgress(std::size_t total, std::size_t done, unsigned jobs)
      : total_(total), done_(done), jobs_(jobs), line_("rmai: sweep") {}

  void finished(const spec::SweepPoint& p, bool ok, std::optional<double> seconds) {
    ++done_;
    failed_ += !ok;
    if (seconds) {  // validation failures took no time and would skew the ETA
      run_seconds_ += *seconds;
      ++runs_;
    }
    if (line_.terminal())
      line_.status(bar(), true);
    else
      line_.note(p.name + (ok ? " ok" : " failed") + " (" + config::join(p.assignments) + "); " + status());
  }
  // A point not started (another process writes it): done for the progress, not failed.
  void skipped(const spec::SweepPoint& p, const std::string& why) {
    ++done_;
    note(p.name + " (" + config::join(p.assignments) + ") not started: " + why);
  }
  void note(const std::string& line) {
    line_.note(line);
    if (line_.terminal()) line_.status(bar(), true);
  }
  void tick() {
    if (line_.terminal()) line_.status(bar());
  }
  void end() { line_.end(); }

 private:
  std::string status() const {
    std::string eta = "-:--";
    if (runs_ > 0) {  // the mean time of the points run so far, `jobs` of them at once
      const double rounds = std::ceil(double(total_ - done_) / jobs_);
      eta = clock_text(rounds * run_seconds_ / runs_);
    }
    return std::to_string(done_) + "/" + std::to_string(total_) + " points, " + std::to_string(failed_) +
           " failed, " + clock_text(line_.elapsed_s()) + " elapsed, ETA " + eta;
  }
  std::string bar() const {
    constexpr std::size_t kWidth = 20;
    const std::size_t filled = total_ ? done_ * kWidth / total_ : kWidth;
    return "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] " + status();
  }

  std::size_t total_, done_, failed_ = 0, runs_ = 0;
  unsigned jobs_;
  double run_seconds_ = 0;
  Progress line_;
};

// A running point: its `rmai run`, whose stdout and stderr come through a pipe into memory (on a
// full disk a log file would swallow the very message that says so), and the point's lock.
struct Running {
  Running(std::size_t index, posix::FileLock lock) : index(index), lock(std::move(lock)) {}
  std::size_t index;
  Clock::time_point start = Clock::now();
  posix::FileLock lock;
  int output = -1;  // the pipe's read end, non-blocking
  bool eof = false;
  std::string log;  // the last kLogKept..2*kLogKept bytes of the output
  std::size_t dropped = 0;
};
constexpr std::size_t kLogKept = 64 << 10;  // rmai's own message is its last line

// Starts `rmai run` for one point. The run inherits the point's lock, so that the lock stays held
// while the run lives; like every child it dies with the sweep (posix::SpawnOptions). The rmai
// executable runs itself, so a sweep never mixes two builds.
pid_t launch(const fs::path& experiment, const fs::path& pdir, const std::vector<std::string>& sets,
             const std::string& switches, Running& r) {
  std::vector<std::string> args{"/proc/self/exe", "run", experiment.string()};
  for (const auto& set : sets) args.push_back("--set=" + set);
  args.insert(args.end(), {"--out", pdir.string()});
  if (!switches.empty()) args.insert(args.end(), {"--switches", switches});
  int pipe[2];
  if (::pipe2(pipe, O_CLOEXEC) != 0) posix::throw_errno("pipe2");
  ::fcntl(pipe[0], F_SETFL, O_NONBLOCK);  // the read end only: the run's writes may block
  posix::SpawnOptions options;
  options.search_path = false;
  options.output_fd = pipe[1];
  options.null_stdin = true;
  options.inherit_fds = {r.lock.fd()};
  pid_t pid = -1;
  try {
    pid = posix::spawn(args, options);
  } catch (...) {
    ::close(pipe[0]);
    ::close(pipe[1]);
    throw;
  }
  ::close(pipe[1]);
  r.output = pipe[0];
  r.lock.record(pid);  // the process a later sweep finds writing the point if this one dies
  return pid;
}

// Reads what the run has written so far, keeping the tail.
void read_output(Running& r) {
  char buffer[16 << 10];
  for (;;) {
    const ssize_t n = ::read(r.output, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      r.eof = n == 0;
      return;  // or EAGAIN: nothing more for now
    }
    r.log.append(buffer, static_cast<std::size_t>(n));
    if (r.log.size() > 2 * kLogKept) {
      r.dropped += r.log.size() - kLogKept;
      r.log.erase(0, r.log.size() - kLogKept);
    }
  }
}

// The reason a run failed as its log's last line, so that error.log is never empty.
std::string failure_line(int status) {
  if (WIFSIGNALED(status))
    return "rmai: failed: `rmai run` was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")\n";
  if (WEXITSTATUS(status) != 0)
    return "rmai: failed: `rmai run` exited with status " + std::to_string(WEXITSTATUS(status)) + "\n";
  return "rmai: failed: `rmai run` exited with status 0 but wrote no summary.json\n";
}

// Writes a failed point's error.log. When even that fails (a full disk), the reason goes to stderr
// and into `unkept`, for the final report, so that it is never lost.
void keep_error(const fs::path& pdir, const std::string& log, SweepProgress& progress, Unkept& unkept) {
  try {
    posix::write_file_atomic(pdir / "error.log", log);
  } catch (const std::exception& e) {
    const std::string name = pdir.filename().string();
    unkept[name] = first_error_of(log);
    progress.note(name + ": " + unkept[name] + "; its error.log could not be written: " +
                  e.what());
  }
}

// The point's lock, or nothing when another process holds it. Tried a few times over 0.1 s: a
// `--collect` probing the lock (posix::holder_of) holds it for microseconds.
std::optional<posix::FileLock> take_lock(const fs::path& pdir) {
  for (int attempt = 0;; ++attempt) {
    if (auto lock = posix::FileLock::try_take(lock_of(pdir)); lock || attempt == 4) return lock;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
}

// Runs the points `todo`, at most `jobs` at once. Points that failed validation are not run: their
// error goes to their error.log like a run's. A point another process is writing is not started.
// Returns the failures whose error.log could not be written.
Unkept run_points(const fs::path& experiment, const fs::path& dir, const std::vector<std::string>& common,
                  const std::vector<spec::SweepPoint>& points, const std::vector<std::string>& invalid,
                  const std::vector<std::size_t>& todo, SweepProgress& progress, unsigned jobs,
                  const std::string& switches) {
  std::deque<std::size_t> queue(todo.begin(), todo.end());
  std::map<pid_t, Running> running;
  Unkept unkept;
  while (!queue.empty() || !running.empty()) {
    while (!queue.empty() && running.size() < jobs) {
      const std::size_t i = queue.front();
      queue.pop_front();
      const fs::path pdir = dir / points[i].name;
      fs::create_directories(pdir);
      auto lock = take_lock(pdir);
      if (!lock) {
        progress.skipped(points[i], busy_reason(pdir));
        continue;
      }
      lock->record(::getpid());
      // Nobody else writes here now: what an earlier attempt left (killed by SIGKILL) goes.
      posix::remove_stale_temporaries(pdir);
      fs::remove(pdir / "error.log");
      if (!invalid[i].empty()) {
        keep_error(pdir, "rmai: error: " + invalid[i] + "\n", progress, unkept);
        progress.finished(points[i], false, std::nullopt);
        continue;
      }
      std::vector<std::string> sets = common;
      sets.insert(sets.end(), points[i].assignments.begin(), points[i].assignments.end());
      Running r(i, std::move(*lock));
      const pid_t pid = launch(experiment, pdir, sets, switches, r);
      running.emplace(pid, std::move(r));
    }
    // Wait for output (or 50 ms, for the progress line), then reap the runs that ended.
    std::vector<pollfd> fds;
    for (const auto& [pid, r] : running)
      if (!r.eof) fds.push_back({r.output, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 50) < 0 && errno != EINTR) posix::throw_errno("poll");
    for (auto it = running.begin(); it != running.end();) {
      Running& r = it->second;
      if (!r.eof) read_output(r);
      int status = 0;
      const pid_t got = ::waitpid(it->first, &status, WNOHANG);
      if (got == 0 || (got < 0 && errno == EINTR)) {
        ++it;
        continue;
      }
      if (got < 0) posix::throw_errno("waitpid");
      read_output(r);  // what it wrote just before it ended
      ::close(r.output);
      const auto& p = points[r.index];
      const fs::path pdir = dir / p.name;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && fs::exists(pdir / "summary.json");
      if (!ok) {
        const std::string head = r.dropped ? "[" + std::to_string(r.dropped) + " bytes of output dropped]\n" : "";
        keep_error(pdir, head + r.log + failure_line(status), progress, unkept);
      }
      progress.finished(p, ok, std::chrono::duration<double>(Clock::now() - r.start).count());
      it = running.erase(it);  // and with it the sweep's hold on the point's lock
    }
    progress.tick();
  }
  progress.end();
  return unkept;
}

// The sweep directory as the job array's tasks see it (absolute), refused when Slurm cannot name
// the task logs inside it: Slurm takes a backslash in --output as "no %A_%a patterns" (every task
// would write one file), and a line break would end the #SBATCH line.
fs::path slurm_dir(const fs::path& dir) {
  const fs::path abs_dir = fs::absolute(dir).lexically_normal();
  if (abs_dir.string().find_first_of("\\\n\r") != std::string::npos)
    throw InputError("--out", shell_quote(abs_dir.string()) +
                                  ": a Slurm job array cannot write its task logs under a path with a backslash or a "
                                  "line break; use another --out");
  return abs_dir;
}

int emit_slurm(const fs::path& dir, const fs::path& experiment, const std::string& name, const Options& o,
               std::size_t count) {
  const fs::path rmai = fs::read_symlink("/proc/self/exe");
  const fs::path abs_dir = slurm_dir(dir);
  std::string command = shell_quote(rmai.string()) + " sweep " + shell_quote(experiment.string()) + " --out " +
                        shell_quote(abs_dir.string());
  if (o.quick) command += " --quick";
  for (const auto& set : o.sets) command += " --set " + shell_quote(set);
  for (const auto& sweep : o.sweeps) command += " --sweep " + shell_quote(sweep);
  if (!o.max_points_text.empty()) command += " --max-points " + shell_quote(o.max_points_text);
  if (!o.switches.empty()) command += " --switches " + shell_quote(o.switches);
  command += " --point \"$SLURM_ARRAY_TASK_ID\"";
  // A job name of safe characters only: sbatch would cut it at a space or '#', or read quotes in it.
  std::string job = "rmai-" + name;
  for (char& c : job)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  // Slurm expands %A and %a in the log's name, and reads a literal '%' as "%%".
  std::string log = abs_dir.string();
  for (std::size_t at = log.find('%'); at != std::string::npos; at = log.find('%', at + 2)) log.insert(at, "%");
  log += "/slurm-%A_%a.out";
  const fs::path script = abs_dir / "sweep.slurm";
  posix::write_file_atomic(script, "#!/bin/bash\n"
                       "# One array task per point of the sweep (written by rmai sweep --emit slurm).\n"
                       "#SBATCH --job-name=" + job + "\n"
                       "#SBATCH --array=0-" + std::to_string(count - 1) + "\n"
                       "#SBATCH --output=" + sbatch_quote(log) + "\n"
                       "#SBATCH --ntasks=1\n"
                       "exec " + command + "\n");
  std::cout << "wrote " << script.string() << " (" << count << " points)\n"
            << "submit:  sbatch " << shell_quote(script.string()) << "\n"
            << "collect: " << shell_quote(rmai.string()) << " sweep --collect " << shell_quote(abs_dir.string()) << "\n";
  return 0;
}

int sweep(Options& o) {
  check(o);
  if (o.collect && (o.target.empty() || fs::is_directory(o.target))) return collect(o.target.empty() ? o.out : o.target);

  const fs::path experiment = fs::absolute(o.target).lexically_normal();
  auto spec = spec::load_sweep(experiment, o.quick, o.sweeps);
  if (!o.max_points_text.empty()) spec.max_points = parse_count("--max-points", o.max_points_text);
  const auto points = spec::expand(spec);
  std::vector<std::string> common = spec.sets;
  common.insert(common.end(), o.sets.begin(), o.sets.end());
  if (o.point && *o.point >= points.size())
    throw InputError("--point", std::to_string(*o.point) + " is beyond the " + std::to_string(points.size()) + " points");

  // Every point is validated in-process first (milliseconds each), so that bad input fails before
  // anything runs; a Slurm task checks only its own point.
  if (!o.point && points.size() > 100) std::cerr << "rmai: sweep: validating " << points.size() << " points\n";
  std::vector<std::string> invalid(points.size());
  std::string name;
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (o.point && i != *o.point) continue;
    std::vector<std::string> sets = common;
    sets.insert(sets.end(), points[i].assignments.begin(), points[i].assignments.end());
    try {
      const auto e = spec::load_experiment(experiment, sets);
      sim::check_registered(e);
      if (name.empty()) name = e.name;
    } catch (const InputError& error) {
      invalid[i] = error.what();
    }
  }
  if (!o.point) refuse_hopeless(spec, points, invalid);
  for (std::size_t i = 0; i < points.size(); ++i)  // said now, not only hours later in the final report
    if (!invalid[i].empty())
      std::cerr << "rmai: sweep: " << points[i].name << " (" << config::join(points[i].assignments)
                << ") is invalid and will fail: " << invalid[i] << "\n";
  if (name.empty()) name = experiment.stem().string();
  const fs::path dir = o.out.empty() ? fs::path("results") / name : fs::path(o.out);
  metrics::check_results_dir(dir, "--out");
  if (!o.emit.empty()) slurm_dir(dir);  // refused before anything is written
  claim(dir, sweep_doc(experiment, o.quick, common, points));
  if (o.collect) return collect(dir);
  if (!o.emit.empty()) return emit_slurm(dir, experiment, name, o, points.size());

  std::vector<std::size_t> todo;
  for (std::size_t i = 0; i < points.size(); ++i)
    if ((!o.point || i == *o.point) && !fs::exists(dir / points[i].name / "summary.json")) todo.push_back(i);
  const std::size_t total = o.point ? 1 : points.size();
  const std::size_t done = total - todo.size();
  const unsigned jobs = o.jobs ? o.jobs : std::max(1u, std::thread::hardware_concurrency());
  if (!o.point)
    std::cerr << "rmai: sweep: " << points.size() << " points into " << dir.string() << ", " << done
              << " already done, " << todo.size() << " to run, " << std::min<std::size_t>(jobs, todo.size())
              << " at once\n";
  SweepProgress progress(total, done, jobs);
  const Unkept unkept = run_points(experiment, dir, common, points, invalid, todo, progress, jobs, o.switches);

  if (o.point) {
    const auto& p = points[*o.point];
    const fs::path pdir = dir / p.name;
    if (fs::exists(pdir / "summary.json")) return 0;
    // A point not started (busy), or whose error.log could not be written, was reported above.
    if (fs::exists(pdir / "error.log"))
      std::cerr << "rmai: sweep: " << p.name << " failed: " << first_error(pdir / "error.log") << "\n";
    return 1;
  }
  return collect(dir, unkept);
}

}  // namespace
}  // namespace rmai::cli
