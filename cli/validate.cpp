// `rmai validate`: the emulator against the simulator on the same experiment, tier by tier. Each tier
// runs as child processes of this executable: `--mode emul` on this machine `repeats` times (this
// machine's timings move from run to run: the median is compared, the spread reported), then once
// `--mode sim` (deterministic) with `experts: emulated` (the same scaled experts and layers) on the
// platform preset describing this machine. The runs go one at a time so that no run disturbs the
// timing of another. With --calibrate every emulator run is paired with a platform measured right
// before it (`rmai calibrate` as a child) and a simulation on that platform: this machine's rates
// move by up to 2x from one minute to the next, so a preset from another minute compares two
// different machines.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "calib/fit.hpp"
#include "calib/probes.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/progress.hpp"
#include "cli/sharing.hpp"
#include "cli/support.hpp"
#include "config/errors.hpp"
#include "metrics/results.hpp"
#include "config/tree.hpp"
#include "emul/emulation.hpp"
#include "posix/files.hpp"
#include "posix/process.hpp"
#include "spec/experiment.hpp"
#include "spec/schemas.hpp"

namespace rmai::cli {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::uint64_t kMaxRepeats = 100;  // a bound, not a limit anyone needs: ~1.5 min per repeat

struct Options {
  ExperimentArgs experiment;
  fs::path out;
  std::vector<std::string> tiers;
  std::string platform = "this-vm";
  std::string calibrate;  // "", full or quick: calibrate before each emulator run instead of --platform
  std::uint64_t repeats = 3;
};

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// The tiers given, or every tier the emulator has; each must be one.
void check_tiers(Options& o) {
  std::vector<std::string> emulated;
  for (const auto& t : spec::tier_names())
    if (emul::emulated(t)) emulated.push_back(t);
  if (o.tiers.empty()) o.tiers = emulated;
  for (const auto& t : o.tiers)
    if (std::find(emulated.begin(), emulated.end(), t) == emulated.end())
      throw InputError("--tiers", "'" + t + "' is not a tier the emulator has (" + config::join(emulated) + ")");
}

// The metrics compared, as paths into summary.json.
struct Metric {
  const char* name;
  std::vector<const char*> path;
};
const std::vector<Metric>& metrics() {
  static const std::vector<Metric> m{
      {"switch_p50_s", {"expert_switch_s", "p50"}},
      {"switch_p99_s", {"expert_switch_s", "p99"}},
      {"switch_mean_s", {"expert_switch_s", "mean"}},
      {"token_p50_s", {"token_latency_s", "p50"}},
      {"replay_s", {"simulated_time_s"}},
      {"expert_switches", {"expert_switches"}},
      {"page_faults", {"page_faults"}},
      {"user_kernel_transitions", {"user_kernel_transitions"}},
      // Only the emulator's fault handler lives in user space; the simulated RMAI has none (0).
      {"handler_system_calls", {"emul", "handler_system_calls"}},
  };
  return m;
}

// A metric under "emul" is the emulator's own: the simulator's summary has none, which is 0. Any
// other missing key is a summary this command does not know, and an error.
double value_at(const json& summary, const Metric& m) {
  if (std::string(m.path.front()) == "emul" && !summary.contains("emul")) return 0;
  const json* node = &summary;
  for (const char* key : m.path) node = &node->at(key);
  return node->get<double>();
}

// One child run, its messages on our stderr. Throws when the run fails.
void run_child(const fs::path& self, const Options& o, const std::string& tier, const std::string& mode,
               const std::string& platform, const fs::path& dir, Progress& progress, std::size_t run,
               std::size_t runs) {
  std::vector<std::string> args{self.string(), "run", o.experiment.file};
  for (const auto& s : o.experiment.sets) args.push_back("--set=" + s);
  args.push_back("--set=memory.tier=" + tier);
  args.push_back("--set=mode=" + mode);
  if (mode == "sim") {
    args.push_back("--set=experts=emulated");
    args.push_back("--set=platform=" + platform);
  }
  args.insert(args.end(), {"--out", dir.string()});
  progress.note(tier + " (" + mode + "), run " + std::to_string(run) + " of " + std::to_string(runs) + ", " +
                clock_text(progress.elapsed_s()) + " elapsed");
  const int code = posix::wait_exit(posix::spawn(args));
  if (code != 0)
    throw std::runtime_error("the " + mode + " run of tier " + tier + " failed (exit " + std::to_string(code) +
                             "); its message is above");
}

// `rmai calibrate` of the emulator's transport and scratch disk into `preset`, as a child.
void calibrate_child(const fs::path& self, const Options& o, const spec::Experiment& e, const std::string& tier,
                     const fs::path& preset, Progress& progress) {
  std::vector<std::string> args{self.string(), "calibrate", "--provider", e.emul.provider, "--disk",
                                e.emul.scratch_dir.string(), "-o", preset.string()};
  if (o.calibrate == "quick") args.push_back("--quick");
  progress.note(tier + ": calibrating this machine, " + clock_text(progress.elapsed_s()) + " elapsed");
  fs::create_directories(preset.parent_path());
  const int code = posix::wait_exit(posix::spawn(args));
  // Exit 2: calibrate refused its input (the experiment's emul.provider or emul.scratch_dir, no huge
  // pages): ours too, before any emulator run when it is the first.
  if (code == 2)
    throw InputError("--calibrate", "rmai calibrate refused to measure this machine for tier " + tier +
                                        " (its message is above)");
  if (code != 0)
    throw std::runtime_error("the calibration before tier " + tier + " failed (exit " + std::to_string(code) +
                             "); its message is above");
}

int validate(Options& o) {
  check_tiers(o);
  if (o.repeats < 1 || o.repeats > kMaxRepeats)
    throw InputError("--repeats", "must be 1 to " + std::to_string(kMaxRepeats));
  if (!o.calibrate.empty() && o.calibrate != "full" && o.calibrate != "quick")
    throw InputError("--calibrate", "'" + o.calibrate + "': full or quick");
  // Loaded once here so that bad input fails before any run starts.
  const spec::Experiment e = spec::load_experiment(o.experiment.file, o.experiment.sets);
  // What calibrate would refuse, refused before any run (a disk directory on tmpfs, say).
  if (!o.calibrate.empty()) calib::check_disk_dir(e.emul.scratch_dir, "emul.scratch_dir");
  metrics::check_results_dir(o.out, "--out");
  // Nothing of a validation that fails half-way shows in --out.
  posix::StagedDirectory staged(o.out);
  const fs::path& out = staged.path();
  const fs::path self = fs::read_symlink("/proc/self/exe");
  std::string csv = "tier,metric,emul,sim,rel_error,emul_min,emul_max,repeats\n";
  // The runs write their own lines, so progress is a line per run, not a line rewritten in place.
  Progress progress("rmai validate");
  const std::size_t runs = o.tiers.size() * (o.calibrate.empty() ? o.repeats + 1 : 2 * o.repeats);
  std::size_t run = 0;
  for (const auto& tier : o.tiers) {
    // With --calibrate each emulator run is paired with a calibration right before it and a
    // simulation on what that measured: the pairs share a minute, so the host's drift moves both.
    std::vector<json> emul, sims;
    for (std::uint64_t k = 1; k <= o.repeats; ++k) {
      std::string platform = o.platform;
      if (!o.calibrate.empty()) {
        const fs::path preset = out / "platforms" / tier / (std::to_string(k) + ".yaml");
        calibrate_child(self, o, e, tier, preset, progress);
        platform = preset.string();
      }
      const fs::path dir = out / "emul" / tier / std::to_string(k);
      run_child(self, o, tier, "emul", platform, dir, progress, ++run, runs);
      emul.push_back(json::parse(slurp(dir / "summary.json")));
      if (!o.calibrate.empty() || k == o.repeats) {
        const fs::path sim_dir = o.calibrate.empty() ? out / "sim" / tier : out / "sim" / tier / std::to_string(k);
        run_child(self, o, tier, "sim", platform, sim_dir, progress, ++run, runs);
        sims.push_back(json::parse(slurp(sim_dir / "summary.json")));
      }
    }
    for (const auto& m : metrics()) {
      std::vector<double> measured;
      for (const auto& summary : emul) measured.push_back(value_at(summary, m));
      std::vector<double> simulated;
      for (const auto& summary : sims) simulated.push_back(value_at(summary, m));
      const double a = calib::median(measured), b = calib::median(simulated);
      const double rel = a != 0 ? (b - a) / a : (b == 0 ? 0.0 : NAN);
      const auto [low, high] = std::minmax_element(measured.begin(), measured.end());
      csv += tier + "," + m.name + "," + csv_number(a) + "," + csv_number(b) + "," + csv_number(rel) + "," + csv_number(*low) + "," +
             csv_number(*high) + "," + std::to_string(o.repeats) + "\n";
    }
  }
  posix::write_file_atomic(out / "validation.csv", csv);
  // The figure is a view of the table: without matplotlib the table still stands.
  const fs::path script = config::home_dir() / "plots" / "validation.py";
  const bool drawn = posix::wait_exit(posix::spawn({python(), script.string(), out.string()})) == 0;
  staged.commit();
  std::cout << csv;
  if (!drawn)
    std::cerr << "rmai validate: the figure " << (o.out / "validation.png").string()
              << " was not drawn (its message is above); validation.csv is complete\n";
  return 0;
}

}  // namespace

void add_validate_command(CLI::App& root) {
  const auto o = std::make_shared<Options>();
  const auto sharing = std::make_shared<SharingOptions>();  // --sharing: cli/validate_sharing.cpp
  CLI::App* app = add_command(root, "validate",
                              "Each tier in the emulator and in the simulator; DIR/validation.csv",
                              [o, sharing] {
                                if (sharing->requested() && !o->calibrate.empty())
                                  throw InputError("--calibrate", "not with --sharing, which simulates --platform with its "
                                                                  "link's measured bandwidth");
                                return sharing->requested()
                                           ? validate_sharing(o->experiment, o->out, o->platform, *sharing, !o->tiers.empty())
                                           : validate(*o);
                              });
  app->footer(
      "Runs EXP.yaml per tier --repeats times in the emulator (--mode emul) and once in the simulator (--mode sim "
      "with experts: emulated, on the platform preset of this machine) and writes DIR/validation.csv with the "
      "columns tier,metric,emul,sim,rel_error,emul_min,emul_max,repeats, where emul is the median of the repeats, "
      "emul_min and emul_max their spread, and rel_error = (sim - emul) / emul; and the figure DIR/validation.png. "
      "The runs' own results stay in DIR/emul/<tier>/<k> and DIR/sim/<tier>. With --calibrate, `rmai calibrate` "
      "measures this machine right before each emulator run (into DIR/platforms/<tier>/<k>.yaml) and the simulator "
      "runs on each of those (DIR/sim/<tier>/<k>; sim is then the median of the simulations), since a shared "
      "machine's rates move from minute to minute. Exits 0 when every run ran, whatever the errors are.");
  add_experiment_args(app, o->experiment);
  add_each(app, "--out", [o](const std::string& v) { o->out = v; }, "the directory for validation.csv")
      ->type_name("DIR")
      ->required();
  add_each(app, "--tiers", [o](const std::string& v) { o->tiers = split(v); },
           "tiers to compare (default: every tier the emulator has; rmai list tiers)")
      ->type_name("T1,T2");
  add_each(app, "--repeats", [o](const std::string& v) { o->repeats = parse_count("--repeats", v); },
           "emulator runs per tier, their median compared (default 3)")
      ->type_name("N");
  CLI::Option* platform = add_value(app, "--platform", o->platform,
                                    "the simulator's platform: a preset name or a FILE.yaml (default this-vm, what rmai "
                                    "calibrate wrote for this machine)")
                               ->type_name("NAME");
  add_value(app, "--calibrate", o->calibrate,
            "calibrate this machine before each emulator run (full, or quick: rmai calibrate --quick) and simulate "
            "each run's platform, instead of --platform")
      ->type_name("full|quick")
      ->excludes(platform);
  add_sharing_options(app, *sharing);
}

}  // namespace rmai::cli
