#include "config/tree.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "config/errors.hpp"
#include "config/units.hpp"

namespace rmai::config {
namespace fs = std::filesystem;

fs::path home_dir() {
  if (const char* home = std::getenv("RMAI_HOME"); home && *home) return home;
  return RMAI_SOURCE_DIR;
}

fs::path models_dir() { return home_dir() / "models"; }

namespace {

// The line of a second document in YAML text (0: none): a "---" after content, or content after
// "...". Markers at the start of a line end any scalar (YAML 1.2, 9.1.4), so lines suffice.
// (yaml-cpp 0.7's LoadAll, the library's own way, loops forever on some malformed documents.)
std::size_t second_document_line(std::istream& in) {
  bool content = false, ended = false;
  std::size_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const bool marker = line.size() >= 3 && (line.size() == 3 || line[3] == ' ' || line[3] == '\t');
    if (marker && line.compare(0, 3, "---") == 0) {
      if (content || ended) return number;
      continue;
    }
    if (marker && line.compare(0, 3, "...") == 0) {
      ended = content;
      continue;
    }
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#' || (!content && line[0] == '%')) continue;
    if (ended) return number;
    content = true;
  }
  return 0;
}

}  // namespace

YAML::Node load_yaml_file(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path.string(), "is a directory, not a YAML file");
  std::ifstream in(path);
  if (!in) throw InputError(path.string(), "cannot open file");
  try {
    if (const std::size_t line = second_document_line(in))
      throw InputError(path.string() + ":" + std::to_string(line), "a second YAML document: one document per file");
    in.clear();
    in.seekg(0);
    return YAML::Load(in);
  } catch (const YAML::Exception& e) {
    throw InputError(path.string() + ":" + std::to_string(e.mark.line + 1), "malformed YAML: " + e.msg);
  } catch (const std::ios_base::failure& e) {  // libstdc++ throws from a failing read (EISDIR, EIO)
    throw InputError(path.string(), std::string("cannot read: ") + e.what());
  }
}

std::string key_of(const YAML::Node& key, const std::string& file, const std::string& path) {
  if (!key.IsScalar())
    throw InputError(location(file, key, path), "a key must be a plain word, not a " +
                                                    std::string(key.IsSequence() ? "list" : key.IsMap() ? "map" : "null"));
  return key.Scalar();
}

std::string location(const std::string& file, const YAML::Node& node, const std::string& key) {
  std::string where;
  if (node && !node.Mark().is_null())
    where = file + ":" + std::to_string(node.Mark().line + 1);
  else if (node)
    where = "--set";  // nodes made by apply_set carry no position
  else
    where = file;
  return key.empty() ? where : where + ": " + key;
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::Count: return "count";
    case Kind::Integer: return "integer";
    case Kind::Number: return "number";
    case Kind::Ratio: return "ratio";
    case Kind::Bytes: return "size";
    case Kind::Bandwidth: return "bandwidth";
    case Kind::Time: return "time";
    case Kind::Text: return "text";
    case Kind::Component: return "component";
  }
  return "";
}

const Param* Schema::find(const std::string& name) const {
  for (const auto& p : params)
    if (p.name == name) return &p;
  return nullptr;
}

fs::path preset_file(const std::string& dir, const std::string& name) {
  const bool plain = !name.empty() && name[0] != '.' && name.find('/') == std::string::npos &&
                     std::none_of(name.begin(), name.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  if (!plain) return {};
  fs::path file = models_dir() / dir / (name + ".yaml");
  std::error_code ec;
  return fs::is_regular_file(file, ec) ? file : fs::path();
}

bool is_path(const std::string& given) {
  return given.find('/') != std::string::npos || given.ends_with(".yaml");
}

fs::path component_file(const std::string& dir, const std::string& given) {
  if (!is_path(given)) return preset_file(dir, given);
  std::error_code ec;
  return fs::is_regular_file(given, ec) ? fs::path(given) : fs::path();
}

std::vector<std::string> preset_names(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(models_dir() / dir, ec))
    if (entry.path().extension() == ".yaml") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

namespace {

std::string dotted(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}

// A plain number's magnitude limit (FLOP/s, dollars, parameters): finite in any product the
// simulator forms with a few of them (docs/interfaces.md, "Bounds on input sizes").
constexpr double kMaxNumber = 1e30;

// Parses one scalar of a numeric kind into `value` (integers exactly, in `value.whole` too); throws
// std::invalid_argument with the reason.
void parse_number(const Param& p, const std::string& text, double& number, std::int64_t& whole) {
  number = 0;
  whole = 0;
  if (!p.keyword.empty() && text == p.keyword) return;
  switch (p.kind) {
    case Kind::Bytes: number = units::parse_bytes(text); return;
    case Kind::Bandwidth: number = units::parse_bandwidth(text); return;
    case Kind::Time: number = units::parse_time(text); return;
    case Kind::Count:
    case Kind::Integer: {
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), whole);
      if (ec == std::errc::result_out_of_range)
        throw std::invalid_argument("\"" + text + "\" is out of range (a 64-bit integer)");
      if (ec != std::errc() || end != text.data() + text.size())
        throw std::invalid_argument("\"" + text + "\" is not an integer");
      number = static_cast<double>(whole);
      return;
    }
    case Kind::Number:
    case Kind::Ratio: {
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
      if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(number))
        throw std::invalid_argument("\"" + text + "\" is not a number");
      if (std::fabs(number) > kMaxNumber) throw std::invalid_argument("\"" + text + "\" is out of range (at most 1e30)");
      return;
    }
    default: return;
  }
}

void check_bounds(const Param& p, double value, const std::string& where) {
  if (p.kind == Kind::Ratio && (value < 0 || value > 1))
    throw InputError(where, "must be a ratio between 0 and 1, got " + std::to_string(value));
  if (!p.keyword.empty() && value == 0) return;  // the keyword stands for 0
  if (p.bound == Bound::Positive && !(value > 0))
    throw InputError(where, std::string("must be positive (a ") + kind_name(p.kind) + " > 0)");
  if (p.bound == Bound::NonNegative && value < 0)
    throw InputError(where, std::string("must not be negative"));
  if (p.max > 0 && value > p.max) {
    std::ostringstream limit;
    limit << p.max;
    throw InputError(where, "too large (at most " + limit.str() + ")");
  }
}

Layer layer_of(const YAML::Node& map, const std::string& file) {
  Layer layer;
  layer.map.reset(map);
  layer.file = file;
  return layer;
}

}  // namespace

double parse_number(const Param& p, const std::string& text) {
  double number = 0;
  std::int64_t whole = 0;
  parse_number(p, text, number, whole);
  return number;
}

const Param* find_param(const Schema& root, const std::string& key) {
  const Schema* schema = &root;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = key.find('.', start);
    const Param* p = schema->find(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (!p || dot == std::string::npos) return p;
    if (p->kind != Kind::Component || !p->schema) return nullptr;
    schema = p->schema;
    start = dot + 1;
  }
}

bool Values::has(const std::string& name) const {
  return values_.count(name) != 0 || children_.count(name) != 0;
}

double Values::number(const std::string& name) const { return values_.at(name).number; }

std::uint64_t Values::count(const std::string& name) const {
  return static_cast<std::uint64_t>(values_.at(name).whole);
}

std::int64_t Values::integer(const std::string& name) const { return values_.at(name).whole; }

const std::string& Values::text(const std::string& name) const { return values_.at(name).text; }

const Values& Values::child(const std::string& name) const { return *children_.at(name); }

std::string Values::where(const std::string& name) const {
  auto it = values_.find(name);
  return it != values_.end() ? it->second.where : dotted(path_, name);
}

YAML::Node Values::to_yaml() const {
  YAML::Node out(YAML::NodeType::Map);
  if (!preset_.empty()) out["preset"] = preset_;
  for (const auto& p : schema_->params) {
    if (auto c = children_.find(p.name); c != children_.end())
      out[p.name] = c->second->to_yaml();
    else if (auto v = values_.find(p.name); v != values_.end())
      out[p.name] = v->second.text;
  }
  return out;
}

Values Values::build(const Schema& schema, const std::vector<Layer>& layers, const std::string& path,
                     bool allow_preset_key) {
  Values out;
  // Unknown keys first: a typo must not be reported as a missing key elsewhere.
  for (const auto& layer : layers) {
    const YAML::Node& map = layer.map;
    if (!map || map.IsNull()) continue;
    if (!map.IsMap())
      throw InputError(location(layer.file, map, path), "expected a map of " + schema.name + " parameters");
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const std::string key = key_of(kv.first, layer.file, path);
      if (!seen.insert(key).second)
        throw InputError(location(layer.file, kv.first, dotted(path, key)), "duplicate key");
      if (key == "preset" && allow_preset_key) continue;
      if (!schema.find(key)) {
        std::vector<std::string> known;
        for (const auto& p : schema.params) known.push_back(p.name);
        throw InputError(location(layer.file, kv.first, dotted(path, key)),
                         "unknown key (" + schema.name + " accepts: " + join(known) + ")");
      }
    }
  }
  out.schema_ = &schema;
  out.path_ = path;
  for (const auto& p : schema.params) {
    const std::string key = dotted(path, p.name);
    if (p.kind == Kind::Component) {
      std::string preset = p.fallback;
      std::string preset_where = key;
      std::vector<Layer> child_layers;
      for (const auto& layer : layers) {
        const YAML::Node& map = layer.map;
        if (!map || !map.IsMap()) continue;
        const YAML::Node node = map[p.name];
        if (!node || node.IsNull()) continue;
        if (node.IsScalar() && !p.preset_dir.empty()) {
          preset = node.Scalar();
          preset_where = location(layer.file, node, key);
        } else if (node.IsMap()) {
          if (const YAML::Node named = node["preset"]; named && !p.preset_dir.empty()) {
            if (!named.IsScalar()) throw InputError(location(layer.file, named, key + ".preset"), "expected a preset name");
            preset = named.Scalar();
            preset_where = location(layer.file, named, key + ".preset");
          }
          child_layers.push_back(layer_of(node, layer.file));
        } else {
          throw InputError(location(layer.file, node, key),
                           p.preset_dir.empty() ? "expected a map" : "expected a preset name or a map");
        }
      }
      // A map naming no preset, where the component has no default one, is the whole component
      // written inline (what `rmai calibrate` writes); it must then give every required key.
      const bool inline_map = preset.empty() && !child_layers.empty();
      if (!p.preset_dir.empty() && !inline_map) {
        const fs::path file = component_file(p.preset_dir, preset);
        if (file.empty() && is_path(preset))
          throw InputError(preset_where, "unknown " + p.name + " preset \"" + preset + "\": no such file (a preset name in models/" +
                                             p.preset_dir + ", or a YAML file's path)");
        if (file.empty())
          throw InputError(preset_where, "unknown " + p.name + " preset \"" + preset + "\" (available: " +
                                             join(preset_names(p.preset_dir)) + "; or a path to a YAML file)");
        YAML::Node values = load_yaml_file(file);
        if (!p.definition_key.empty() && values.IsMap()) values.remove(p.definition_key);
        child_layers.insert(child_layers.begin(), Layer{values, file.string()});
      }
      auto child = std::make_shared<Values>(build(*p.schema, child_layers, key, !p.preset_dir.empty()));
      // A file's preset is kept as its absolute path, so config.resolved.yaml runs from anywhere.
      child->preset_ = p.preset_dir.empty() ? "" : is_path(preset) ? fs::absolute(preset).lexically_normal().string() : preset;
      out.children_[p.name] = std::move(child);
      continue;
    }

    // A plain value: the topmost layer that sets it wins.
    YAML::Node node;
    std::string file;
    bool given = false;
    for (const auto& layer : layers) {
      const YAML::Node& map = layer.map;
      if (!map || !map.IsMap()) continue;
      if (const YAML::Node found = map[p.name]) {
        node.reset(found);
        file = layer.file;
        given = true;
      }
    }
    Values::Value value;
    if (given) {
      if (!node.IsScalar() || node.Scalar().empty())
        throw InputError(location(file, node, key), std::string("expected a ") + kind_name(p.kind));
      value.text = node.Scalar();
      value.where = location(file, node, key);
    } else if (!p.fallback.empty()) {
      value.text = p.fallback;
      value.where = key + " (default)";
    } else if (p.required) {
      const Layer* top = layers.empty() ? nullptr : &layers.back();
      // A map made by --set has no position: name the file it belongs to.
      const bool positioned = top && top->map && !top->map.Mark().is_null();
      throw InputError(positioned ? location(top->file, top->map, key) : (top ? top->file + ": " + key : key),
                       "missing required key (" + std::string(kind_name(p.kind)) + ": " + p.description + ")");
    } else {
      continue;  // optional and absent
    }
    if (p.kind == Kind::Text) {
      if (!p.choices.empty() && std::find(p.choices.begin(), p.choices.end(), value.text) == p.choices.end())
        throw InputError(value.where, "unknown value \"" + value.text + "\" (expected one of: " + join(p.choices) + ")");
    } else {
      try {
        parse_number(p, value.text, value.number, value.whole);
      } catch (const std::invalid_argument& e) {
        throw InputError(value.where, std::string("bad ") + kind_name(p.kind) + ": " + e.what());
      }
      if (p.kind == Kind::Count && value.whole < 0)
        throw InputError(value.where, "must not be negative");
      if (p.kind == Kind::Count && value.whole > 4294967295)
        throw InputError(value.where, "too large (at most 4294967295)");
      check_bounds(p, value.number, value.where);
    }
    out.values_[p.name] = std::move(value);
  }
  return out;
}

Values resolve(const Schema& schema, const std::vector<Layer>& layers, const std::string& path) {
  return Values::build(schema, layers, path, false);
}

void apply_set(YAML::Node& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == assignment.size())
    throw InputError("--set " + assignment, "expected key=value, e.g. --set memory.tier=rmai");
  const std::string key = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  std::vector<std::string> segments;
  std::stringstream ss(key);
  for (std::string s; std::getline(ss, s, '.');) {
    if (s.empty()) throw InputError("--set " + assignment, "empty key segment in \"" + key + "\"");
    segments.push_back(s);
  }
  if (key.back() == '.') throw InputError("--set " + assignment, "empty key segment in \"" + key + "\"");
  YAML::Node cursor = root;
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    YAML::Node next = cursor[segments[i]];
    if (next.IsScalar()) {  // a preset name: keep it and add the override beside it
      YAML::Node map(YAML::NodeType::Map);
      map["preset"] = next.Scalar();
      cursor[segments[i]] = map;
    } else if (!next.IsDefined() || next.IsNull()) {
      cursor[segments[i]] = YAML::Node(YAML::NodeType::Map);
    } else if (!next.IsMap()) {
      throw InputError("--set " + assignment, "\"" + segments[i] + "\" is not a map");
    }
    YAML::Node child = cursor[segments[i]];
    cursor.reset(child);
  }
  YAML::Node target = cursor[segments.back()];
  if (target.IsMap()) {
    target["preset"] = value;  // --set platform=big on a platform given as a map
  } else {
    // A fresh node, so that errors about the value point at --set, not at the file's line.
    cursor.remove(segments.back());
    cursor[segments.back()] = value;
  }
}

}  // namespace rmai::config
