// `rmai list [SECTION] [--json]`: what an experiment can name (models, presets, tiers, policies, ...)
// and every parameter with its dotted key. Each section is built once as JSON; the text form is
// printed from it, so that --json says exactly what the text says.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>

#include "cache/expert_cache.hpp"
#include "cache/prefetcher.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "config/errors.hpp"
#include "config/tree.hpp"
#include "emul/fabric.hpp"
#include "spec/experiment.hpp"
#include "spec/schemas.hpp"
#include "spec/tiers.hpp"

namespace rmai::cli {
namespace {

using json = nlohmann::ordered_json;

json models() {
  json out = json::array();
  for (const auto& name : config::preset_names("moe")) {
    const auto m = spec::load_model(name, name);
    out.push_back({{"name", name}, {"moe_layers", m.moe_layers}, {"experts", m.experts}, {"top_k", m.top_k},
                   {"expert_bytes", m.expert_bytes()}});
  }
  return out;
}

json names_in(const std::string& dir) { return config::preset_names(dir); }

json hardware() {
  json out = json::object();
  // The platform's hardware components, as its schema declares them (models/hardware/<kind>).
  for (const auto& p : spec::schema::platform().params)
    if (p.preset_dir.rfind("hardware/", 0) == 0) out[p.preset_dir.substr(9)] = names_in(p.preset_dir);
  return out;
}

json tiers() {
  json out = json::array();
  for (const auto& t : spec::tiers())
    out.push_back({{"name", t.name}, {"label", t.label}, {"colour", t.colour}, {"medium", t.medium_info().name},
                   {"description", t.path}, {"emulated", t.no_emulation.empty()}, {"no_emulation", t.no_emulation},
                   {"default", t.is_default}, {"shared", t.medium_info().shared}});
  return out;
}

template <typename Registry>
json registered(const Registry& registry) {
  json out = json::array();
  for (const auto& [name, entry] : registry.entries()) out.push_back({{"name", name}, {"description", entry.description}});
  return out;
}

json transports() {
  json out = json::array();
  for (const char* provider : {"tcp", "shm", "verbs"}) {
    const std::string why = emul::provider_unavailable_reason(provider);
    out.push_back({{"name", provider}, {"libfabric", emul::provider_string(provider)}, {"available", why.empty()},
                   {"why_not", why}});
  }
  return out;
}

// The SI unit a value of this kind is given in once parsed.
const char* unit_of(config::Kind kind) {
  switch (kind) {
    case config::Kind::Bytes: return "B";
    case config::Kind::Bandwidth: return "B/s";
    case config::Kind::Time: return "s";
    default: return "";
  }
}

// A preset-backed component as each of its presets resolves it (presets that do not fit this
// component's schema, like another tier's file in models/tiers, are left out).
std::vector<std::pair<std::string, std::shared_ptr<const config::Values>>> presets_of(const config::Param& p) {
  std::vector<std::pair<std::string, std::shared_ptr<const config::Values>>> out;
  const config::Schema holder{"", "", {p}};
  for (const auto& name : config::preset_names(p.preset_dir)) {
    YAML::Node map;
    map[p.name] = name;
    try {
      auto values = std::make_shared<config::Values>(config::resolve(holder, {{map, "rmai list"}}, ""));
      out.emplace_back(name, std::shared_ptr<const config::Values>(values, &values->child(p.name)));
    } catch (const InputError&) {
    }
  }
  return out;
}

using Presets = std::vector<std::pair<std::string, std::shared_ptr<const config::Values>>>;

// Every parameter under `schema` with its dotted key; `presets`: the values of the innermost
// preset-backed component above, per preset.
void parameters(const config::Schema& schema, const std::string& prefix, const Presets& presets, json& out) {
  for (const auto& p : schema.params) {
    const std::string key = prefix + p.name;
    json row{{"key", key}};
    json set = json::object();
    if (p.kind == config::Kind::Component) {
      row["kind"] = p.preset_dir.empty() ? "section" : "preset";
      if (!p.preset_dir.empty()) row["presets_in"] = "models/" + p.preset_dir;
      for (const auto& [name, values] : presets)
        if (!p.preset_dir.empty()) {
          const std::string& named = values->child(p.name).preset();
          set[name] = named.empty() ? "(inline)" : named;  // written in place (rmai calibrate's presets)
        }
    } else {
      row["kind"] = config::kind_name(p.kind);
      row["unit"] = unit_of(p.kind);
      for (const auto& [name, values] : presets)
        if (values->has(p.name)) set[name] = values->text(p.name);
    }
    row["default"] = p.fallback.empty() ? json() : json(p.fallback);
    row["required"] = p.required && p.fallback.empty() && !(p.kind == config::Kind::Component && p.preset_dir.empty());
    row["description"] = p.description;
    if (!set.empty()) row["presets"] = set;
    out.push_back(row);
    if (p.kind != config::Kind::Component || !p.schema) continue;
    Presets inner;
    if (!p.preset_dir.empty()) {
      inner = presets_of(p);
    } else {
      for (const auto& [name, values] : presets)
        inner.emplace_back(name, std::shared_ptr<const config::Values>(values, &values->child(p.name)));
    }
    parameters(*p.schema, key + ".", inner, out);
  }
}

json all_parameters() {
  json out = json::array();
  parameters(spec::schema::experiment(), "", {}, out);
  return out;
}

struct Section {
  const char* name;
  const char* title;
  std::function<json()> build;
};

const std::vector<Section>& sections() {
  static const std::vector<Section> all{
      {"models", "models (models/moe)", [] { return models(); }},
      {"platforms", "platforms (models/platforms)", [] { return names_in("platforms"); }},
      {"hardware", "hardware presets (models/hardware)", [] { return hardware(); }},
      {"generators", "synthetic trace generators (trace.generator, models/synthetic)", [] { return names_in("synthetic"); }},
      {"tiers", "tiers (memory.tier)", [] { return tiers(); }},
      {"policies", "cache policies (cache.policy)", [] { return registered(cache::PolicyRegistry::instance()); }},
      {"prefetchers", "prefetchers (cache.prefetch)", [] { return registered(cache::PrefetcherRegistry::instance()); }},
      {"transports", "transports (emul.provider, libfabric)", [] { return transports(); }},
      {"parameters", "parameters (dotted keys for --set; kind, unit, default; the values presets set)",
       [] { return all_parameters(); }},
  };
  return all;
}

std::string text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

void print(const Section& section, const json& data) {
  std::cout << section.title << ":\n";
  const std::string name = section.name;
  if (name == "models") {
    for (const auto& m : data)
      std::printf("  %-20s %u MoE layers x %u experts, top-%u, %.1f MB per expert\n", text(m["name"]).c_str(),
                  m["moe_layers"].get<unsigned>(), m["experts"].get<unsigned>(), m["top_k"].get<unsigned>(),
                  m["expert_bytes"].get<double>() / 1e6);
  } else if (name == "hardware") {
    for (const auto& [kind, names] : data.items()) {
      std::cout << "  " << kind << ":";
      for (const auto& n : names) std::cout << " " << text(n);
      std::cout << "\n";
    }
  } else if (name == "tiers") {
    for (const auto& t : data)
      std::printf("  %-10s %-12s %s%s\n", text(t["name"]).c_str(), text(t["medium"]).c_str(),
                  text(t["description"]).c_str(),
                  t["emulated"].get<bool>() ? "" : (" [not emulated: " + text(t["no_emulation"]) + "]").c_str());
  } else if (name == "transports") {
    for (const auto& t : data)
      std::printf("  %-10s %-14s %s\n", text(t["name"]).c_str(), text(t["libfabric"]).c_str(),
                  t["available"].get<bool>() ? "available here" : ("not available here: " + text(t["why_not"])).c_str());
  } else if (name == "parameters") {
    for (const auto& p : data) {
      std::string kind = text(p["kind"]);
      if (p.contains("presets_in")) kind = "preset in " + text(p["presets_in"]);
      if (p.contains("unit") && !text(p["unit"]).empty()) kind += " (" + text(p["unit"]) + ")";
      const std::string fallback = !p["default"].is_null() ? "default " + text(p["default"])
                                   : p["required"].get<bool>() ? "required"
                                   : kind == "section"         ? ""
                                                               : "optional";
      std::printf("  %-32s %-28s %-18s %s\n", text(p["key"]).c_str(), kind.c_str(), fallback.c_str(),
                  text(p["description"]).c_str());
      if (p.contains("presets") && !text(p["key"]).ends_with(".description")) {  // descriptions: too long here
        std::vector<std::string> items;
        for (const auto& [preset, value] : p["presets"].items()) items.push_back(preset + " " + text(value));
        std::cout << "      presets: " << config::join(items) << "\n";
      }
    }
  } else if (data.is_array() && !data.empty() && data[0].is_object()) {
    for (const auto& e : data) std::printf("  %-10s %s\n", text(e["name"]).c_str(), text(e["description"]).c_str());
  } else {
    std::cout << " ";
    for (const auto& n : data) std::cout << " " << text(n);
    std::cout << "\n";
  }
}

struct ListArgs {
  std::string section;
  bool json = false;
};

int list(const ListArgs& a) {
  std::vector<std::string> names;
  for (const auto& s : sections()) names.push_back(s.name);
  if (!a.section.empty() && std::find(names.begin(), names.end(), a.section) == names.end())
    throw InputError(a.section, "no such section (one of: " + config::join(names) + ")");
  json all = json::object();
  bool first = true;
  for (const auto& s : sections()) {
    if (!a.section.empty() && a.section != s.name) continue;
    const json data = s.build();
    if (a.json) {
      all[s.name] = data;
    } else {
      if (!first) std::cout << "\n";
      print(s, data);
    }
    first = false;
  }
  if (a.json) std::cout << all.dump(2) << "\n";
  return 0;
}

}  // namespace

void add_list_command(CLI::App& root) {
  const auto a = std::make_shared<ListArgs>();
  CLI::App* app = add_command(root, "list", "Models, presets, tiers, cache policies, prefetchers, transports and every parameter",
                              [a] { return list(*a); });
  std::vector<std::string> names;
  for (const auto& s : sections()) names.push_back(s.name);
  app->add_option("SECTION", a->section, "only this section: " + config::join(names));
  app->add_flag("--json", a->json, "print JSON: {\"SECTION\": ...} for each section printed");
}

}  // namespace rmai::cli
