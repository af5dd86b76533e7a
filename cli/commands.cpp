#include "cli/commands.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/progress.hpp"
#include "cli/sharing.hpp"
#include "config/errors.hpp"
#include "sim/replay.hpp"
#include "emul/emulation.hpp"
#include "metrics/results.hpp"
#include "posix/files.hpp"
#include "spec/experiment.hpp"
#include "cli/options.hpp"
#include "cli/support.hpp"
#include "traces/experiment_trace.hpp"

namespace rmai::cli {
namespace fs = std::filesystem;

namespace {

struct RunArgs {
  ExperimentArgs experiment;
  std::vector<std::string> simgrid;  // --cfg= and --log=, passed to SimGrid unchanged
  std::string out;
  std::string switches = "all";  // --switches: all | sample:N | none
  StartBarrier barrier;  // --ready-fd, --start-fd (rmai validate --sharing's clients)
};

YAML::Node resolved_config(const spec::Experiment& e) {
  // The name first, whether it was given or derived, so that running this file again writes the same file.
  YAML::Node root(YAML::NodeType::Map);
  root["name"] = e.name;
  for (const auto& kv : e.values.to_yaml())
    if (kv.first.as<std::string>() != "name") root[kv.first] = kv.second;
  if (e.trace.file) root["trace"]["file"] = fs::absolute(*e.trace.file).string();  // runnable from anywhere
  YAML::Node provenance;
  provenance["seed"] = e.seed;
  provenance["trace_seed"] = e.trace.seed;
  provenance["git_revision"] = git_revision();
  provenance["simgrid_version"] = simgrid_version();
  provenance["note"] = "written by rmai run; ignored when this file is run again";
  root["provenance"] = provenance;
  return root;
}

int check(const ExperimentArgs& o) {
  const auto e = spec::load_experiment(o.file, o.sets);
  sim::check_registered(e);
  if (e.trace.file)
    traces::spilled_experiment_trace(e);  // validates the whole trace against the model
  else
    traces::experiment_generator(e);  // validates the generator against the model
  YAML::Emitter out;
  out << resolved_config(e);
  std::cout << out.c_str() << "\n";
  return 0;
}

// A few lines of the summary.json just written (the one place these are computed) for whoever ran it.
void print_key_results(const std::string& summary_json) {
  const auto s = nlohmann::json::parse(summary_json);
  const double switches = s["expert_switches"].get<double>();
  std::fprintf(stderr,
               "rmai:   expert switch p50 %.4g ms, p99 %.4g ms; %.4g tokens/s; cache hit rate %.1f%%; "
               "%.4g faults per switch\n",
               s["expert_switch_s"]["p50"].get<double>() * 1e3, s["expert_switch_s"]["p99"].get<double>() * 1e3,
               s["tokens_per_s"].get<double>(), s["cache_hit_rate"].get<double>() * 100,
               switches > 0 ? s["page_faults"].get<double>() / switches : 0.0);
}

int run(const RunArgs& o) {
  const auto e = spec::load_experiment(o.experiment.file, o.experiment.sets);
  const auto trace = traces::spilled_experiment_trace(e);
  const fs::path out = o.out.empty() ? fs::path("results") / e.name : fs::path(o.out);
  metrics::check_results_dir(out, "--out");  // before the run, not after it
  const auto selection = metrics::parse_switch_selection(o.switches, "--switches");
  if (e.mode == "emul" && (selection.kind != metrics::SwitchSelection::Kind::All || selection.zstd))
    throw InputError("--switches", "only all, uncompressed, with mode emul (its few switches are kept in memory)");
  const auto wall_start = std::chrono::steady_clock::now();
  // Progress only for a run that lasts: nothing for the first 10 s.
  Progress progress("rmai run " + e.name);
  const auto report = [&progress](std::size_t done, std::size_t total) {
    if (progress.elapsed_s() >= 10) progress.update(done, total);
  };
  const auto barrier = start_barrier(o.barrier);
  if (barrier && e.mode != "emul") throw InputError("--start-fd", "only with --mode emul");
  // Before the result, so that it goes after it: the result's streamed switch file (a temporary
  // until committed) must be gone before the directory it made is removed.
  std::optional<posix::CreatedDirectories> out_dir;  // removed again if the run fails
  metrics::RunResult result;
  if (e.mode == "emul") {
    result = emul::run_emulation(e, trace, {o.experiment.file, o.experiment.sets, report, barrier});
  } else {
    metrics::SwitchLog switches;  // streamed as the run goes: memory does not grow with the trace
    out_dir.emplace(out);
    posix::remove_temporaries_of_dead_processes(out);  // a killed run's streamed switches (hundreds of MB)
    switches.stream_to(out, e.tier, selection);
    result = sim::simulate(e, trace, o.simgrid, report, std::move(switches));
  }
  progress.end();
  result.wall_time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const std::string summary = metrics::write_results(out, result, resolved_config(e));
  if (out_dir) out_dir->keep();
  std::cerr << "rmai: " << e.name << ": " << result.tokens << " tokens, " << result.switches.size()
            << " expert switches, " << result.simulated_time_s << (e.mode == "emul" ? " s replayed" : " s simulated")
            << " in " << result.wall_time_s
            << " s; results in " << out.string() << "\n";
  print_key_results(summary);
  return 0;
}

}  // namespace

void add_run_commands(CLI::App& root) {
  const auto r = std::make_shared<RunArgs>();
  CLI::App* run_app = add_command(root, "run",
                                  "Simulate one experiment (or emulate it on this machine: --mode emul); results in DIR",
                                  [r] { return run(*r); });
  add_experiment_args(run_app, r->experiment);
  add_value(run_app, "--out", r->out, "results directory (default results/<name>)")->type_name("DIR");
  add_value(run_app, "--switches", r->switches,
            "rows of switches.csv: all (default), sample:N (every N-th switch), none; ,zstd after it writes "
            "switches.csv.zst instead; summary.json counts every switch")
      ->type_name("all|sample:N|none[,zstd]");
  for (const std::string name : {"--cfg", "--log"})
    add_each(run_app, name, [r, name](const std::string& v) { r->simgrid.push_back(name + "=" + v); },
             "passed to SimGrid unchanged as " + name + "=VALUE (repeatable)")
        ->type_name("VALUE");
  add_start_barrier_args(run_app, r->barrier);

  const auto c = std::make_shared<ExperimentArgs>();
  CLI::App* check_app = add_command(root, "check",
                                    "Load and validate an experiment and its trace; print the resolved configuration",
                                    [c] { return check(*c); });
  add_experiment_args(check_app, *c);
}

}  // namespace rmai::cli
