// `rmai reproduce`: every paper experiment as a sweep, then the figures and the report.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "calib/probes.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/progress.hpp"
#include "cli/support.hpp"
#include "config/errors.hpp"
#include "config/tree.hpp"
#include "emul/huge_pages.hpp"
#include "emul/region.hpp"
#include "posix/files.hpp"
#include "posix/process.hpp"
#include "sim/replay.hpp"
#include "spec/experiment.hpp"
#include "metrics/switch_log.hpp"
#include "spec/sweep.hpp"

#include <nlohmann/json.hpp>

namespace rmai::cli {
namespace fs = std::filesystem;

namespace {

int run_program(const std::vector<std::string>& args) { return posix::wait_exit(posix::spawn(args)); }

// The reproduction's experiments: the YAMLs in experiments/ with a sweep block, by name.
std::vector<fs::path> paper_experiments() {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(config::home_dir() / "experiments")) {
    if (entry.path().extension() != ".yaml") continue;
    const YAML::Node root = config::load_yaml_file(entry.path());
    if (root.IsMap() && root["sweep"]) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> figure_scripts() {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(config::home_dir() / "plots"))
    if (entry.path().extension() == ".py" && entry.path().filename().string().starts_with("fig"))
      out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

// A figure script's exit code when its experiments have no results (plots/common.py, NO_RESULTS).
constexpr int kFigureWithoutResults = 3;

struct Options {
  fs::path out;  // default: results/reproduce, or results/reproduce-quick with --quick
  bool quick = false;
  std::string jobs_text;
  std::vector<std::string> only;
  std::vector<std::string> sets;  // --set, passed to every sweep
  // --switches, passed to every sweep: the figures read summary.json alone, so each run keeps one
  // switch in 100 of its switches, compressed (the full rows of a reproduction took 731 MB).
  std::string switches = "sample:100,zstd";
};

// Every --set must suit every experiment that will run (with its quick block when --quick), so that
// a bad key or value is exit 2 naming it before anything runs, not after the first sweeps.
void check_sets(const std::vector<fs::path>& experiments, const Options& o) {
  if (o.sets.empty()) return;
  for (const auto& experiment : experiments) {
    std::vector<std::string> sets = spec::load_sweep(experiment, o.quick, {}).sets;
    sets.insert(sets.end(), o.sets.begin(), o.sets.end());
    sim::check_registered(spec::load_experiment(experiment, sets));
  }
}

// DIR/reproduce.json records what a reproduction was asked (--quick, --set), so that resuming it
// with other overrides is refused instead of mixing results of two platforms in one report.
nlohmann::ordered_json reproduce_doc(const Options& o) {
  return {{"schema", 1}, {"quick", o.quick}, {"sets", o.sets}};
}

std::string describe(const nlohmann::json& doc) {
  std::string out = doc.value("quick", false) ? "--quick" : "full (no --quick)";
  const auto sets = doc.value("sets", std::vector<std::string>{});
  if (sets.empty()) return out + ", no --set";
  for (const auto& set : sets) out += " --set " + set;
  return out;
}

void refuse_other_reproduction(const fs::path& out, const Options& o) {
  const fs::path file = out / "reproduce.json";
  if (!fs::exists(file)) return;
  nlohmann::json old;
  try {
    old = nlohmann::json::parse(slurp(file));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(file.string(), std::string("malformed: ") + e.what());
  }
  const auto now = reproduce_doc(o);
  if (old.value("sets", std::vector<std::string>{}) == o.sets && old.value("quick", false) == o.quick) return;
  throw InputError(old.value("sets", std::vector<std::string>{}) != o.sets ? "--set" : "--quick",
                   out.string() + " holds a reproduction with " + describe(old) + "; this one is " + describe(now) +
                       ": resume it with the same options, or use another --out");
}

int reproduce(const Options& o) {
  // Quick and full runs are different sweeps: each gets its own default folder, so that one never
  // refuses the other's results.
  const fs::path out = !o.out.empty() ? o.out : o.quick ? "results/reproduce-quick" : "results/reproduce";
  const bool quick = o.quick;
  const auto& only = o.only;
  std::string jobs = std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  metrics::parse_switch_selection(o.switches, "--switches");  // exit 2 before anything runs
  if (!o.jobs_text.empty()) {
    if (parse_count("--jobs", o.jobs_text) == 0) throw InputError("--jobs", "must be at least 1");
    jobs = o.jobs_text;
  }
  auto experiments = paper_experiments();
  for (const auto& name : o.sets)
    if (name.find('=') == std::string::npos) throw InputError("--set " + name, "expected KEY=VALUE");
  for (const auto& name : only)
    if (name != "validate" &&
        std::none_of(experiments.begin(), experiments.end(), [&](const fs::path& p) { return p.stem() == name; }))
      throw InputError("--only " + name, "no such experiment with a sweep in experiments/");
  if (!only.empty())
    std::erase_if(experiments, [&](const fs::path& p) { return std::find(only.begin(), only.end(), p.stem()) == only.end(); });
  check_sets(experiments, o);
  refuse_other_reproduction(out, o);

  const auto start = std::chrono::steady_clock::now();
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  ::setenv("RMAI_BIN", self.c_str(), 1);  // the plots take the tier definitions from this rmai
  std::vector<std::string> failed, skipped;
  Progress progress("rmai reproduce");  // the sweeps draw their own progress: a line per stage here
  std::size_t done = 0;
  for (const auto& experiment : experiments) {
    progress.note(experiment.stem().string() + " (experiment " + std::to_string(++done) + " of " +
                  std::to_string(experiments.size()) + ", " + clock_text(progress.elapsed_s()) + " elapsed)");
    std::vector<std::string> sweep{self, "sweep", experiment.string(), "--out", (out / experiment.stem()).string(),
                                   "--jobs", jobs, "--switches", o.switches};
    if (quick) sweep.push_back("--quick");
    for (const auto& set : o.sets) sweep.insert(sweep.end(), {"--set", set});
    const int code = run_program(sweep);
    if (code == 2) return 2;  // a bad experiment file, or a folder of another sweep: nothing else is worth running
    // The sweep took its folder: the reproduction is recorded (not before, so that a refused start
    // leaves nothing behind that would refuse the next).
    if (!fs::exists(out / "reproduce.json")) posix::write_file_atomic(out / "reproduce.json", reproduce_doc(o).dump(2) + "\n");
    if (code != 0) failed.push_back("experiment " + experiment.stem().string());
  }
  // The emulator against the simulator on this machine (experiments/validate.yaml), one run at a
  // time after the sweeps so that nothing else disturbs its timings, each emulator run paired with
  // a calibration right before it (validate --calibrate: this machine's rates move from minute to
  // minute; the shipped this-vm is one past minute of one machine). Skipped, with the reason in the
  // report, where userfaultfd is not available.
  if (only.empty() || std::find(only.begin(), only.end(), "validate") != only.end()) {
    const fs::path dir = out / "validate";
    fs::create_directories(dir);
    fs::remove(dir / "skipped.txt");
    std::string why = emul::userfaultfd_unavailable_reason();
    // validate.yaml maps the regions with 2 MiB pages, and calibrate measures them.
    if (why.empty() && !emul::HugePageReservation(calib::kHugePagesNeeded).ok())
      why = "no " + std::to_string(calib::kHugePagesNeeded) + " free 2 MiB huge pages (root raises vm.nr_hugepages)";
    if (!why.empty()) {
      posix::write_file_atomic(dir / "skipped.txt", why + "\n");
      std::cerr << "rmai reproduce: validate skipped: " << why << "\n";
    } else {
      progress.note("validate (the emulator on this machine against the simulator), " +
                    clock_text(progress.elapsed_s()) + " elapsed");
      std::vector<std::string> validate{self, "validate", (config::home_dir() / "experiments" / "validate.yaml").string(),
                                        "--out", dir.string(), "--calibrate", quick ? "quick" : "full"};
      if (quick) validate.insert(validate.end(), {"--set", "trace.tokens=16"});
      if (run_program(validate) != 0) failed.push_back("validate");
    }
  }
  // The figure scripts are independent: run them `jobs` at a time (each spends a second importing
  // matplotlib).
  progress.note("figures and report");
  fs::create_directories(out / "figures");
  const auto scripts = figure_scripts();
  const std::size_t parallel = std::max<std::size_t>(1, std::stoul(jobs));
  for (std::size_t first = 0; first < scripts.size(); first += parallel) {
    std::vector<std::pair<pid_t, std::string>> running;
    for (std::size_t i = first; i < std::min(scripts.size(), first + parallel); ++i)
      running.emplace_back(posix::spawn({python(), scripts[i].string(), out.string(), (out / "figures").string()}),
                           scripts[i].stem().string());
    for (const auto& [pid, name] : running) {
      const int code = posix::wait_exit(pid);
      if (code == kFigureWithoutResults && !only.empty())
        skipped.push_back(name);  // its experiments were left out by --only
      else if (code != 0)
        failed.push_back("figure " + name);
    }
  }
  if (run_program({python(), (config::home_dir() / "plots" / "report.py").string(), out.string()}) != 0)
    failed.push_back("report");

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "rmai reproduce: %zu experiments in %.0f s; report: %s\n", experiments.size(), seconds,
               (out / "report.html").c_str());
  if (!skipped.empty())
    std::cerr << "rmai reproduce: not drawn (their experiments were not run): " << config::join(skipped) << "\n";
  for (const auto& f : failed) std::cerr << "rmai reproduce: failed: " << f << "\n";
  return failed.empty() ? 0 : 1;
}

}  // namespace

void add_reproduce_command(CLI::App& root) {
  const auto o = std::make_shared<Options>();
  CLI::App* app = add_command(root, "reproduce",
                              "Every paper experiment as a sweep, the validation, the figures and the report",
                              [o] { return reproduce(*o); });
  app->footer(
      "The experiments are the YAMLs in experiments/ with a sweep block, each swept into DIR/<name>; then the "
      "emulator is validated against the simulator on this machine (DIR/validate, skipped where userfaultfd is "
      "not available), the figures are drawn into DIR/figures and the report written to DIR/report.html. "
      "--set KEY=VALUE goes to every sweep (e.g. --set platform=gen5, --set platform.nic.bandwidth=400Gbps), "
      "under the points' own values; DIR/reproduce.json records --quick and --set, and running again into DIR "
      "with others is refused (exit 2).");
  add_each(app, "--out", [o](const std::string& v) { o->out = v; }, "the directory of it all (default results/reproduce, with --quick results/reproduce-quick)")
      ->type_name("DIR");
  app->add_flag("--quick", o->quick, "every sweep's `quick:` block, and a short validation");
  add_value(app, "--jobs", o->jobs_text, "runs at once (default: the number of cores)")->type_name("N");
  add_value(app, "--switches", o->switches,
            "rows of every run's switches.csv: sample:N, all, none, each optionally ,zstd (default sample:100,zstd: "
            "switches.csv.zst; rmai run --switches); the figures need none of them")
      ->type_name("all|sample:N|none[,zstd]");
  add_values(app, "--only", o->only, "only this experiment (a name in experiments/, or validate); repeatable")
      ->type_name("NAME");
  add_values(app, "--set", o->sets,
             "override a key in every experiment's sweep, as `rmai sweep --set` (repeatable; not the validation, "
             "which measures this machine); DIR records them and a resume with others is refused")
      ->type_name("KEY=VALUE");
}

}  // namespace rmai::cli
