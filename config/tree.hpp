#pragma once
// The configuration tree: YAML maps validated against declared schemas, with presets.
//
// A schema lists a component's parameters (name, kind and unit, bounds, default, description);
// `rmai list` prints them and `resolve` validates a YAML tree against them: unknown keys, missing
// required keys, bad units and out-of-range values are InputErrors naming file, line and key.
//
// A component may come from a preset: `nic: connectx-6-200g` or `nic: {preset: connectx-6-200g,
// bandwidth: 100Gbps}` loads models/<dir>/connectx-6-200g.yaml and overlays the given fields; the
// preset may also be a YAML file's path (`platform: /tmp/here.yaml`). A map naming no preset, for a
// component without a default preset, is the whole component written inline.
// Layers are applied bottom to top: preset file, then each YAML map that mentions the component.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rmai::config {

// The models/ catalog: $RMAI_HOME/models if RMAI_HOME is set, else the source tree's.
std::filesystem::path home_dir();
std::filesystem::path models_dir();

// Parses a YAML file; a missing file, a syntax error or a second document is an InputError naming
// file and line.
YAML::Node load_yaml_file(const std::filesystem::path& path);

// "file:line: key" (line omitted when unknown, e.g. for values given with --set).
std::string location(const std::string& file, const YAML::Node& node, const std::string& key);

// The text of a map key; a key that is not a plain scalar (`? [a, b]`) is an InputError naming the
// file and line (`path` is the dotted key of the map it is in).
std::string key_of(const YAML::Node& key, const std::string& file, const std::string& path);

enum class Kind { Count, Integer, Number, Ratio, Bytes, Bandwidth, Time, Text, Component };
enum class Bound { Any, NonNegative, Positive };

struct Schema;

struct Param {
  std::string name;
  Kind kind = Kind::Text;
  std::string description;
  // Default value as YAML text (for a component: the default preset name). Empty: see `required`.
  std::string fallback;
  bool required = true;  // false with an empty fallback: optional, may be absent
  Bound bound = Bound::Positive;
  double max = 0;                     // numeric kinds: the largest value accepted (0: the kind's own)
  std::vector<std::string> choices;   // Text: the accepted values (empty: any)
  std::string keyword;                // numeric kinds: a word accepted as the value 0 ("expert")
  std::string preset_dir;             // Component: presets in models/<preset_dir>/ (empty: none)
  const Schema* schema = nullptr;     // Component: its parameters
  // Component: a key of its preset files that defines the component itself rather than setting a
  // value (a tier's `tier:` block, spec/tiers.hpp); dropped when a preset is read as values, and
  // unknown anywhere else. Empty: none.
  std::string definition_key;
};

struct Schema {
  std::string name;
  std::string description;
  std::vector<Param> params;
  const Param* find(const std::string& name) const;
};

// One YAML map contributing keys to a component, and the file it came from.
struct Layer {
  YAML::Node map;
  std::string file;
};

// A validated component.
class Values {
 public:
  bool has(const std::string& name) const;
  double number(const std::string& name) const;
  std::uint64_t count(const std::string& name) const;
  std::int64_t integer(const std::string& name) const;
  const std::string& text(const std::string& name) const;
  const Values& child(const std::string& name) const;
  // "file:line: path.name" of where a value was set, for errors found after validation.
  std::string where(const std::string& name) const;
  const std::string& path() const { return path_; }
  const std::string& preset() const { return preset_; }
  // The resolved tree in schema order, each value as written (presets expanded).
  YAML::Node to_yaml() const;

 private:
  friend Values resolve(const Schema&, const std::vector<Layer>&, const std::string&);
  static Values build(const Schema& schema, const std::vector<Layer>& layers, const std::string& path,
                      bool allow_preset_key);
  struct Value {
    std::string text;
    double number = 0;
    std::int64_t whole = 0;  // Count and Integer: the exact value (number may round it)
    std::string where;
  };
  const Schema* schema_ = nullptr;
  std::string path_;
  std::string preset_;
  std::map<std::string, Value> values_;
  std::map<std::string, std::shared_ptr<Values>> children_;
};

// Validates `layers` (bottom first) against `schema`. `path` is the dotted key of the component.
Values resolve(const Schema& schema, const std::vector<Layer>& layers, const std::string& path);

// models/<dir>/<name>.yaml when `name` is a plain preset name (no '/', no control characters, not
// starting with '.') and that file exists as a regular file; empty otherwise.
std::filesystem::path preset_file(const std::string& dir, const std::string& name);

// Whether a component's preset is given as a file rather than a name: it holds a '/' or ends in
// ".yaml" (`--set platform=results/calib/here.yaml`).
bool is_path(const std::string& given);

// The file of a component's preset: `given` itself when is_path (relative to the current
// directory), else preset_file(dir, given); empty when there is no such regular file.
std::filesystem::path component_file(const std::string& dir, const std::string& given);

// Names of the presets in models/<dir>/ (file stems, sorted).
std::vector<std::string> preset_names(const std::string& dir);

// Applies `--set a.b.c=value` to a YAML tree. A scalar met on the way down is taken as a preset
// name and becomes {preset: name}. Throws InputError for a malformed assignment.
void apply_set(YAML::Node& root, const std::string& assignment);

const char* kind_name(Kind kind);

// The value of one scalar of a numeric kind in SI base units (bytes, bytes/s, s; the keyword, like
// "expert", is 0). Throws std::invalid_argument with the reason.
double parse_number(const Param& p, const std::string& text);

// The parameter a dotted key ("platform.nic.bandwidth") names below `root`, or nullptr.
const Param* find_param(const Schema& root, const std::string& key);

// "a, b, c": the items with `separator` between them.
std::string join(const std::vector<std::string>& items, const std::string& separator = ", ");

}  // namespace rmai::config
