#include "cli/commands.hpp"

#include <array>
#include <xbt/base.h>  // simgrid/version.h needs its macros
#include <simgrid/version.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "config/errors.hpp"
#include "cache/expert_cache.hpp"
#include "cache/prefetcher.hpp"
#include "sim/replay.hpp"
#include "emul/emulation.hpp"
#include "emul/fabric.hpp"
#include "emul/store.hpp"
#include "metrics/results.hpp"
#include "spec/schemas.hpp"
#include "spec/experiment.hpp"
#include "cli/support.hpp"
#include "sim/tier.hpp"
#include "traces/experiment_trace.hpp"

namespace rmai::cli {
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string experiment;
  std::vector<std::string> sets;
  std::vector<std::string> simgrid;  // --cfg= and --log= pass-through
  std::string out;
};

Options parse(const std::vector<std::string>& args, bool allow_run_options) {
  Options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const auto value = [&] { return option_value(args, i); };
    if (take_experiment_option(args, i, o.sets)) continue;
    if (allow_run_options && a == "--out") {
      o.out = value();
    } else if (allow_run_options && (a.rfind("--cfg=", 0) == 0 || a.rfind("--log=", 0) == 0)) {
      o.simgrid.push_back(a);
    } else if (!a.empty() && a[0] == '-') {
      throw InputError(a, "unknown option");
    } else if (o.experiment.empty()) {
      o.experiment = a;
    } else {
      throw InputError(a, "unexpected argument (one experiment file per run)");
    }
  }
  if (o.experiment.empty()) throw InputError("", "no experiment file given");
  return o;
}

std::string git_revision() {
  const std::string command = "git -C \"" + config::home_dir().string() + "\" describe --always --dirty --abbrev=12 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) return "unknown";
  std::array<char, 128> buffer{};
  std::string out;
  while (fgets(buffer.data(), buffer.size(), pipe.get())) out += buffer.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out.empty() ? "unknown" : out;
}

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
  provenance["simgrid_version"] = std::to_string(SIMGRID_VERSION_MAJOR) + "." + std::to_string(SIMGRID_VERSION_MINOR) +
                                  "." + std::to_string(SIMGRID_VERSION_PATCH);
  provenance["note"] = "written by rmai run; ignored when this file is run again";
  root["provenance"] = provenance;
  return root;
}

}  // namespace

int check(const std::vector<std::string>& args) {
  const Options o = parse(args, false);
  const auto e = spec::load_experiment(o.experiment, o.sets);
  sim::check_registered(e);
  if (e.trace.file)
    traces::experiment_trace(e);  // validates the whole trace against the model
  else
    traces::experiment_generator(e);  // validates the generator against the model
  YAML::Emitter out;
  out << resolved_config(e);
  std::cout << out.c_str() << "\n";
  return 0;
}

int run(const std::vector<std::string>& args) {
  const Options o = parse(args, true);
  const auto e = spec::load_experiment(o.experiment, o.sets);
  const auto trace = traces::experiment_trace(e);
  const fs::path out = o.out.empty() ? fs::path("results") / e.name : fs::path(o.out);
  const auto wall_start = std::chrono::steady_clock::now();
  auto result = e.mode == "emul" ? emul::run_emulation(e, trace, {o.experiment, o.sets}) : sim::simulate(e, trace, o.simgrid);
  result.wall_time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  metrics::write_results(out, result, resolved_config(e));
  std::cerr << "rmai: " << e.name << ": " << result.tokens << " tokens, " << result.switches.size()
            << " expert switches, " << result.simulated_time_s << (e.mode == "emul" ? " s replayed" : " s simulated")
            << " in " << result.wall_time_s
            << " s; results in " << out.string() << "\n";
  return 0;
}

int list(const std::vector<std::string>& args) {
  if (!args.empty()) throw InputError(args[0], "rmai list takes no arguments");
  std::cout << "models (models/moe):\n";
  for (const auto& name : config::preset_names("moe")) {
    const auto m = spec::load_model(name, name);
    std::printf("  %-20s %u MoE layers x %u experts, top-%u, %.1f MB per expert\n", name.c_str(), m.moe_layers,
                m.experts, m.top_k, m.expert_bytes() / 1e6);
  }
  std::cout << "platforms (models/platforms): ";
  for (const auto& name : config::preset_names("platforms")) std::cout << name << " ";
  std::cout << "\nhardware presets (models/hardware):\n";
  for (const char* kind : {"nic", "pcie", "gpu", "dram", "cxl", "nvme", "os", "prices"}) {
    std::cout << "  " << kind << ": ";
    for (const auto& name : config::preset_names(std::string("hardware/") + kind)) std::cout << name << " ";
    std::cout << "\n";
  }
  std::cout << "synthetic trace presets (models/synthetic): ";
  for (const auto& name : config::preset_names("synthetic")) std::cout << name << " ";
  std::cout << "\ntiers (memory.tier):\n";
  for (const auto& [name, entry] : sim::TierRegistry::instance().entries())
    std::printf("  %-10s %s\n", name.c_str(), entry.description.c_str());
  std::cout << "cache policies (cache.policy):\n";
  for (const auto& [name, entry] : cache::PolicyRegistry::instance().entries())
    std::printf("  %-10s %s\n", name.c_str(), entry.description.c_str());
  std::cout << "prefetchers (cache.prefetch):\n";
  for (const auto& [name, entry] : cache::PrefetcherRegistry::instance().entries())
    std::printf("  %-10s %s\n", name.c_str(), entry.description.c_str());
  std::cout << "emulated tiers (mode: emul):\n";
  for (const auto& [name, entry] : emul::StoreRegistry::instance().entries())
    std::printf("  %-10s %s\n", name.c_str(), entry.description.c_str());
  std::cout << "transports (emul.provider, libfabric):\n";
  for (const char* provider : {"tcp", "shm", "verbs"}) {
    const std::string why = emul::provider_unavailable_reason(provider);
    std::printf("  %-10s %-14s %s\n", provider, emul::provider_string(provider).c_str(),
                why.empty() ? "available here" : ("not available here: " + why).c_str());
  }
  std::cout << "\nparameters (kind, default; no default = required):\n";
  for (const auto* schema : spec::schema::all()) {
    std::cout << "  " << schema->name << ": " << schema->description << "\n";
    for (const auto& p : schema->params) {
      std::string kind = config::kind_name(p.kind);
      std::string fallback = p.fallback.empty() ? (p.required ? "required" : "optional") : "default " + p.fallback;
      if (p.kind == config::Kind::Component) {
        kind = p.preset_dir.empty() ? "section (below)" : "preset in models/" + p.preset_dir;
        if (p.preset_dir.empty()) fallback = "";
      }
      std::printf("    %-18s %-28s %-16s %s\n", p.name.c_str(), kind.c_str(), fallback.c_str(), p.description.c_str());
    }
  }
  return 0;
}

}  // namespace rmai::cli
