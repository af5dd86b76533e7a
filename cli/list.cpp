// `rmai list`: what an experiment can name (models, presets, tiers, policies, ...) and every parameter.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cache/expert_cache.hpp"
#include "cache/prefetcher.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "config/tree.hpp"
#include "emul/fabric.hpp"
#include "emul/store.hpp"
#include "spec/experiment.hpp"
#include "spec/schemas.hpp"
#include "sim/tier.hpp"

namespace rmai::cli {
namespace {

int list() {
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

}  // namespace

void add_list_command(CLI::App& root) {
  add_command(root, "list", "Models, presets, tiers, cache policies, prefetchers, transports and every parameter",
              [] { return list(); });
}

}  // namespace rmai::cli
