#include "spec/tiers.hpp"

#include <algorithm>
#include <map>

#include "config/errors.hpp"

namespace rmai::spec {
namespace fs = std::filesystem;

const std::vector<MediumInfo>& media() {
  static const std::vector<MediumInfo> all{
      {Medium::HostDram, "host-dram", "a private copy in each node's host DRAM", false, BytesFrom::None},
      {Medium::CxlDevices, "cxl", "a private copy on each node's CXL memory expander", false, BytesFrom::Cxl},
      {Medium::CxlPool, "cxl-pool", "one copy in a CXL memory pool, each node on its own port", true, BytesFrom::Cxl},
      {Medium::RemotePool, "remote-pool", "one copy in the memory servers' DRAM, reached over RDMA", true,
       BytesFrom::Remote},
      {Medium::Nvme, "nvme", "a private copy on each node's NVMe drive", false, BytesFrom::Disk},
  };
  return all;
}

const MediumInfo& medium_info(Medium medium) {
  for (const auto& m : media())
    if (m.medium == medium) return m;
  throw std::logic_error("medium without a description");
}

namespace {

// A map's scalar at `key`, or `fallback` when absent (required when fallback is null).
std::string scalar(const YAML::Node& map, const std::string& key, const std::string& file, const std::string& path,
                   const char* fallback = nullptr) {
  const YAML::Node node = map[key];
  if (!node || node.IsNull()) {
    if (fallback) return fallback;
    throw InputError(config::location(file, map, path + "." + key), "missing in the tier definition");
  }
  if (!node.IsScalar()) throw InputError(config::location(file, node, path + "." + key), "expected a scalar");
  return node.Scalar();
}

config::Kind kind_named(const std::string& name, const std::string& where) {
  static const std::map<std::string, config::Kind> kinds{
      {"count", config::Kind::Count}, {"integer", config::Kind::Integer}, {"number", config::Kind::Number},
      {"ratio", config::Kind::Ratio}, {"size", config::Kind::Bytes},      {"bandwidth", config::Kind::Bandwidth},
      {"time", config::Kind::Time},   {"text", config::Kind::Text}};
  const auto it = kinds.find(name);
  if (it == kinds.end()) {
    std::vector<std::string> names;
    for (const auto& [n, k] : kinds) names.push_back(n);
    throw InputError(where, "unknown kind \"" + name + "\" (" + config::join(names) + ")");
  }
  return it->second;
}

// One declared parameter: {kind: size, description: "...", bound: non-negative, keyword: expert}.
config::Param param_of(const std::string& name, const YAML::Node& node, const std::string& file,
                       const std::string& path) {
  const std::string key = path + "." + name;
  if (!node.IsMap()) throw InputError(config::location(file, node, key), "expected {kind: ..., description: ...}");
  for (const auto& kv : node) {
    const std::string field = config::key_of(kv.first, file, key);
    if (field != "kind" && field != "description" && field != "bound" && field != "keyword" && field != "max")
      throw InputError(config::location(file, kv.first, key + "." + field),
                       "unknown field (a parameter has kind, description, bound, keyword, max)");
  }
  config::Param p;
  p.name = name;
  p.kind = kind_named(scalar(node, "kind", file, key), config::location(file, node["kind"], key + ".kind"));
  p.description = scalar(node, "description", file, key);
  const std::string bound = scalar(node, "bound", file, key, "positive");
  if (bound == "positive") {
    p.bound = config::Bound::Positive;
  } else if (bound == "non-negative") {
    p.bound = config::Bound::NonNegative;
  } else {
    throw InputError(config::location(file, node["bound"], key + ".bound"), "expected positive or non-negative");
  }
  p.keyword = scalar(node, "keyword", file, key, "");
  if (const std::string max = scalar(node, "max", file, key, ""); !max.empty()) {
    // The tier's own limit on the parameter (memory.<tier>.concurrency, say), in the kind's base unit.
    std::size_t used = 0;
    try {
      p.max = std::stod(max, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != max.size() || !(p.max > 0))
      throw InputError(config::location(file, node["max"], key + ".max"), "expected a positive number");
  }
  return p;
}

struct Loaded {
  std::uint64_t order;
  std::string order_at;  // file:line of the order, for the error naming a duplicate
  TierDefinition definition;
};

TierDefinition definition_of(const fs::path& path, std::uint64_t& order, std::string& order_at) {
  const std::string file = path.string();
  const std::string name = path.stem().string();
  const YAML::Node root = config::load_yaml_file(path);
  const YAML::Node block = root.IsMap() ? root[kTierDefinitionKey] : YAML::Node();
  const std::string where = "tier";
  if (!block || !block.IsMap())
    throw InputError(config::location(file, root, where), "a tier preset starts with its definition (a tier: map)");
  for (const auto& kv : block) {
    static const std::vector<std::string> fields{"order", "label", "colour", "medium", "path", "no_emulation",
                                                 "default", "parameters"};
    const std::string field = config::key_of(kv.first, file, where);
    if (std::find(fields.begin(), fields.end(), field) == fields.end())
      throw InputError(config::location(file, kv.first, where + "." + field),
                       "unknown field (a tier definition has " + config::join(fields) + ")");
  }
  TierDefinition d;
  d.name = name;
  d.file = file;
  const std::string order_text = scalar(block, "order", file, where);
  order_at = config::location(file, block["order"], where + ".order");
  try {
    std::size_t used = 0;
    order = std::stoull(order_text, &used);
    if (used != order_text.size() || order_text.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument(order_text);  // stoull would take "-1" as 2^64 - 1
  } catch (const std::exception&) {
    throw InputError(order_at, "expected a whole number");
  }
  d.label = scalar(block, "label", file, where);
  d.colour = scalar(block, "colour", file, where);
  d.path = scalar(block, "path", file, where);
  d.no_emulation = scalar(block, "no_emulation", file, where, "");
  const std::string is_default = scalar(block, "default", file, where, "false");
  if (is_default != "true" && is_default != "false")
    throw InputError(config::location(file, block["default"], where + ".default"), "expected true or false");
  d.is_default = is_default == "true";
  const std::string medium = scalar(block, "medium", file, where);
  std::vector<std::string> names;
  for (const auto& m : media()) names.push_back(m.name);
  const auto it = std::find(names.begin(), names.end(), medium);
  if (it == names.end())
    throw InputError(config::location(file, block["medium"], where + ".medium"),
                     "unknown medium \"" + medium + "\" (" + config::join(names) + ")");
  d.medium = media()[std::size_t(it - names.begin())].medium;

  d.schema.name = name;
  d.schema.description = d.path;
  config::Param description;
  description.name = "description";
  description.kind = config::Kind::Text;
  description.description = "what this preset is";
  description.required = false;
  d.schema.params.push_back(description);
  if (const YAML::Node params = block["parameters"]; params && !params.IsNull()) {
    if (!params.IsMap()) throw InputError(config::location(file, params, where + ".parameters"), "expected a map");
    for (const auto& kv : params)
      d.schema.params.push_back(param_of(config::key_of(kv.first, file, where + ".parameters"), kv.second, file, where + ".parameters"));
  }
  // The replay reads it for every tier (docs/adding-a-tier.md).
  if (std::none_of(d.schema.params.begin(), d.schema.params.end(), [](const auto& p) { return p.name == "concurrency"; }))
    throw InputError(config::location(file, block, where + ".parameters"),
                     "every tier declares concurrency (switches a node runs at once), with its limit as max");
  return d;
}

}  // namespace

std::vector<TierDefinition> load_tiers(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  std::vector<Loaded> loaded;
  for (const auto& file : files) {
    std::uint64_t order = 0;
    std::string order_at;
    TierDefinition d = definition_of(file, order, order_at);
    for (const auto& other : loaded)
      if (other.order == order) throw InputError(order_at, "the same order as " + other.order_at);
    loaded.push_back({order, order_at, std::move(d)});
  }
  std::sort(loaded.begin(), loaded.end(), [](const Loaded& a, const Loaded& b) { return a.order < b.order; });
  std::vector<TierDefinition> out;
  for (auto& l : loaded) out.push_back(std::move(l.definition));
  const auto defaults = std::count_if(out.begin(), out.end(), [](const TierDefinition& d) { return d.is_default; });
  if (defaults != 1)
    throw InputError(dir.string(), "exactly one tier definition must say default: true (memory.tier's default), not " +
                                       std::to_string(defaults));
  return out;
}

const std::vector<TierDefinition>& tiers() {
  static const std::vector<TierDefinition> all = load_tiers(config::models_dir() / "tiers");
  return all;
}

const TierDefinition* find_tier(const std::string& name) {
  for (const auto& t : tiers())
    if (t.name == name) return &t;
  return nullptr;
}

const TierDefinition& default_tier() {
  for (const auto& t : tiers())
    if (t.is_default) return t;
  throw std::logic_error("no default tier");  // load_tiers checked there is one
}

std::vector<std::string> tier_names() {
  std::vector<std::string> names;
  for (const auto& t : tiers()) names.push_back(t.name);
  return names;
}

}  // namespace rmai::spec
