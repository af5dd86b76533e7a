#include "spec/sweep.hpp"

#include <cstdio>
#include <set>
#include <sstream>

#include "config/tree.hpp"
#include "config/errors.hpp"
#include "spec/schemas.hpp"

namespace rmai::spec {
namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(trim(part));
  if (!text.empty() && text.back() == separator) parts.emplace_back();
  return parts;
}

// A key must name a parameter of the experiment schema (or a component, set as a whole preset), so
// that a typo is reported at its line before any point runs.
void check_key(const std::string& key, const std::string& where) {
  const config::Schema* schema = &schema::experiment();
  bool presettable = false;
  const auto segments = split(key, '.');
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const bool last = i + 1 == segments.size();
    if (last && segments[i] == "preset" && presettable) return;
    const config::Param* p = schema ? schema->find(segments[i]) : nullptr;
    if (segments[i].empty() || !p) throw InputError(where, "unknown key \"" + key + "\" (see rmai list)");
    if (p->kind == config::Kind::Component) {
      schema = p->schema;
      presettable = !p->preset_dir.empty();
    } else {
      schema = nullptr;  // a plain value has no keys below it
    }
  }
}

std::vector<std::string> keys_of(const std::string& joined, const std::string& where) {
  auto keys = split(joined, ',');
  for (const auto& key : keys) check_key(key, where);
  return keys;
}

std::string scalar(const YAML::Node& node, const std::string& where) {
  if (!node.IsScalar() || node.Scalar().empty()) throw InputError(where, "expected a value (a YAML scalar)");
  return node.Scalar();
}

// The value list of one sweep key: scalars for one key, tuples of keys.size() scalars for zipped keys.
std::vector<std::vector<std::string>> values_of(const std::string& file, const YAML::Node& list,
                                                const std::vector<std::string>& keys, const std::string& key) {
  const std::string where = config::location(file, list, key);
  if (!list.IsSequence()) throw InputError(where, "expected a list of values, e.g. [a, b]");
  if (list.size() == 0) throw InputError(where, "empty list of values");
  std::vector<std::vector<std::string>> values;
  for (const auto& item : list) {
    const std::string at = config::location(file, item, key);
    if (keys.size() == 1) {
      values.push_back({scalar(item, at)});
      continue;
    }
    if (!item.IsSequence() || item.size() != keys.size())
      throw InputError(at, "expected a tuple of " + std::to_string(keys.size()) + " values, one per key");
    std::vector<std::string> tuple;
    for (const auto& value : item) tuple.push_back(scalar(value, at));
    values.push_back(tuple);
  }
  return values;
}

SweepDimension* find(std::vector<SweepDimension>& dimensions, const std::vector<std::string>& keys) {
  for (auto& d : dimensions)
    if (d.keys == keys) return &d;
  return nullptr;
}

}  // namespace

SweepSpec load_sweep(const fs::path& experiment, bool quick, const std::vector<std::string>& cli_sweeps) {
  SweepSpec spec;
  spec.experiment = experiment;
  const std::string file = experiment.string();
  const YAML::Node root = config::load_yaml_file(experiment);

  if (const YAML::Node block = root.IsMap() ? root["sweep"] : YAML::Node(); block && !block.IsNull()) {
    if (!block.IsMap()) throw InputError(config::location(file, block, "sweep"), "expected a map of key: [values]");
    for (const auto& kv : block) {
      const std::string key = config::key_of(kv.first, file, "sweep");
      const std::string where = config::location(file, kv.first, key);
      SweepDimension d{keys_of(key, where), {}, where};
      d.values = values_of(file, kv.second, d.keys, key);
      spec.dimensions.push_back(d);
    }
  }

  // The quick block is checked even without --quick, so that its errors do not wait for that day.
  if (const YAML::Node block = root.IsMap() ? root["quick"] : YAML::Node(); block && !block.IsNull()) {
    if (!block.IsMap()) throw InputError(config::location(file, block, "quick"), "expected a map of key: value");
    for (const auto& kv : block) {
      const std::string key = config::key_of(kv.first, file, "quick");
      const std::string where = config::location(file, kv.first, "quick." + key);
      if (key != "sweep") {
        check_key(key, where);
        const std::string value = scalar(kv.second, where);
        if (quick) spec.sets.push_back(key + "=" + value);
        continue;
      }
      if (!kv.second.IsMap()) throw InputError(where, "expected a map of key: [values]");
      for (const auto& entry : kv.second) {
        const std::string name = config::key_of(entry.first, file, "quick.sweep");
        const std::string at = config::location(file, entry.first, "quick.sweep." + name);
        const auto keys = keys_of(name, at);
        SweepDimension* d = find(spec.dimensions, keys);
        if (!d) throw InputError(at, "not a key of the sweep block (quick.sweep replaces value lists)");
        auto values = values_of(file, entry.second, keys, name);
        if (quick) d->values = values;
      }
    }
  }

  for (const auto& text : cli_sweeps) {
    const auto eq = text.find('=');
    const std::string where = "--sweep " + text;
    if (eq == std::string::npos || eq == 0) throw InputError(where, "expected key=v1,v2,...");
    const std::string key = trim(text.substr(0, eq));
    if (key.find(',') != std::string::npos)
      throw InputError(where, "one key per --sweep (zipped keys go in the YAML sweep block)");
    check_key(key, where);
    SweepDimension d{{key}, {}, "--sweep: " + key};
    for (const auto& value : split(text.substr(eq + 1), ',')) {
      if (value.empty()) throw InputError(where, "empty value");
      d.values.push_back({value});
    }
    if (d.values.empty()) throw InputError(where, "empty list of values");
    for (const auto& other : spec.dimensions)
      if (other.keys.size() > 1)
        for (const auto& part : other.keys)
          if (part == key) throw InputError(where, "\"" + key + "\" is swept together with other keys at " + other.where);
    if (SweepDimension* existing = find(spec.dimensions, d.keys))
      existing->values = d.values;  // replaces the file's list in place: the order of dimensions stays
    else
      spec.dimensions.push_back(d);
  }

  std::set<std::string> seen;
  for (const auto& d : spec.dimensions)
    for (const auto& key : d.keys)
      if (!seen.insert(key).second) throw InputError(d.where, "\"" + key + "\" is swept twice");
  return spec;
}

std::uint64_t point_count(const SweepSpec& spec) {
  std::uint64_t count = 1;
  for (const auto& d : spec.dimensions) {
    const std::uint64_t n = d.values.size();
    count = n != 0 && count > UINT64_MAX / n ? UINT64_MAX : count * n;
  }
  return count;
}

std::vector<SweepPoint> expand(const SweepSpec& spec) {
  if (const std::uint64_t count = point_count(spec); count > spec.max_points) {
    std::vector<std::string> sizes;
    for (const auto& d : spec.dimensions) sizes.push_back(std::to_string(d.values.size()));
    throw InputError(spec.experiment.string() + ": sweep",
                     (count == UINT64_MAX ? std::string("more than 2^64") : std::to_string(count)) + " points (" +
                         config::join(sizes, " x ") + "), more than the " + std::to_string(spec.max_points) +
                         " allowed: narrow the sweep, or raise the limit with rmai sweep --max-points N");
  }
  std::vector<SweepPoint> points(1);
  for (const auto& d : spec.dimensions) {
    std::vector<SweepPoint> next;
    for (const auto& point : points)
      for (std::size_t step = 0; step < d.values.size(); ++step) {
        SweepPoint p = point;
        p.steps.push_back(step);
        for (std::size_t k = 0; k < d.keys.size(); ++k) p.assignments.push_back(d.keys[k] + "=" + d.values[step][k]);
        next.push_back(std::move(p));
      }
    points = std::move(next);
  }
  for (std::size_t i = 0; i < points.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "p%04zu", i);
    points[i].name = name;
  }
  return points;
}

}  // namespace rmai::spec
