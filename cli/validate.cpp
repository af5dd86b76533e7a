// `rmai validate`: the emulator against the simulator on the same experiment, tier by tier. Each tier
// runs twice as child processes of this executable: `--mode emul` on this machine, then `--mode sim`
// with `experts: emulated` (the same scaled experts and layers) on the platform preset describing
// this machine. The runs go one at a time so that no run disturbs the timing of another.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

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

struct Options {
  ExperimentArgs experiment;
  fs::path out;
  std::vector<std::string> tiers;
  std::string platform = "this-vm";
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
  };
  return m;
}

double value_at(const json& summary, const Metric& m) {
  const json* node = &summary;
  for (const char* key : m.path) node = &node->at(key);
  return node->get<double>();
}

std::string number(double v) {
  if (std::isnan(v)) return "nan";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", v);
  return buffer;
}

// One child run, its messages on our stderr. Throws when the run fails.
void run_child(const fs::path& self, const Options& o, const std::string& tier, const std::string& mode,
               const fs::path& dir, Progress& progress, std::size_t run, std::size_t runs) {
  std::vector<std::string> args{self.string(), "run", o.experiment.file};
  for (const auto& s : o.experiment.sets) args.push_back("--set=" + s);
  args.push_back("--set=memory.tier=" + tier);
  args.push_back("--set=mode=" + mode);
  if (mode == "sim") {
    args.push_back("--set=experts=emulated");
    args.push_back("--set=platform=" + o.platform);
  }
  args.insert(args.end(), {"--out", dir.string()});
  progress.note(tier + " (" + mode + "), run " + std::to_string(run) + " of " + std::to_string(runs) + ", " +
                clock_text(progress.elapsed_s()) + " elapsed");
  const int code = posix::wait_exit(posix::spawn(args));
  if (code != 0)
    throw std::runtime_error("the " + mode + " run of tier " + tier + " failed (exit " + std::to_string(code) +
                             "); its message is above");
}

int validate(Options& o) {
  check_tiers(o);
  // Loaded once here so that bad input fails before any run starts.
  spec::load_experiment(o.experiment.file, o.experiment.sets);
  metrics::check_results_dir(o.out, "--out");
  const fs::path self = fs::read_symlink("/proc/self/exe");
  std::string csv = "tier,metric,emul,sim,rel_error\n";
  // The runs write their own lines, so progress is a line per run, not a line rewritten in place.
  Progress progress("rmai validate");
  std::size_t run = 0;
  for (const auto& tier : o.tiers) {
    const fs::path emul_dir = o.out / "emul" / tier, sim_dir = o.out / "sim" / tier;
    run_child(self, o, tier, "emul", emul_dir, progress, ++run, 2 * o.tiers.size());
    run_child(self, o, tier, "sim", sim_dir, progress, ++run, 2 * o.tiers.size());
    const json emul = json::parse(slurp(emul_dir / "summary.json"));
    const json sim = json::parse(slurp(sim_dir / "summary.json"));
    for (const auto& m : metrics()) {
      const double a = value_at(emul, m), b = value_at(sim, m);
      const double rel = a != 0 ? (b - a) / a : (b == 0 ? 0.0 : NAN);
      csv += tier + "," + m.name + "," + number(a) + "," + number(b) + "," + number(rel) + "\n";
    }
  }
  fs::create_directories(o.out);
  posix::write_file_atomic(o.out / "validation.csv", csv);
  std::cout << csv;
  return 0;
}

}  // namespace

void add_validate_command(CLI::App& root) {
  const auto o = std::make_shared<Options>();
  const auto sharing = std::make_shared<SharingOptions>();  // --sharing: cli/validate_sharing.cpp
  CLI::App* app = add_command(root, "validate",
                              "Each tier in the emulator and in the simulator; DIR/validation.csv",
                              [o, sharing] {
                                return sharing->requested()
                                           ? validate_sharing(o->experiment, o->out, o->platform, *sharing, !o->tiers.empty())
                                           : validate(*o);
                              });
  app->footer(
      "Runs EXP.yaml once per tier in the emulator (--mode emul) and in the simulator (--mode sim with experts: "
      "emulated, on the platform preset of this machine) and writes DIR/validation.csv with the columns "
      "tier,metric,emul,sim,rel_error, where rel_error = (sim - emul) / emul. The runs' own results stay in "
      "DIR/emul/<tier> and DIR/sim/<tier>. Exits 0 when every run ran, whatever the errors are.");
  add_experiment_args(app, o->experiment);
  add_each(app, "--out", [o](const std::string& v) { o->out = v; }, "the directory for validation.csv")
      ->type_name("DIR")
      ->required();
  add_each(app, "--tiers", [o](const std::string& v) { o->tiers = split(v); },
           "tiers to compare (default: every tier the emulator has; rmai list tiers)")
      ->type_name("T1,T2");
  add_value(app, "--platform", o->platform, "the simulator's platform (default this-vm, the preset calibrated for this machine)")
      ->type_name("NAME");
  add_sharing_options(app, *sharing);
}

}  // namespace rmai::cli
