// `rmai trace gen|fit|stats`: synthetic traces, generator fitting and routing statistics.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "cli/commands.hpp"
#include "config/errors.hpp"
#include "traces/experiment_trace.hpp"
#include "traces/fit.hpp"
#include "traces/generator.hpp"
#include "spec/experiment.hpp"
#include "traces/stats.hpp"
#include "config/units.hpp"

namespace rmai::cli {
namespace fs = std::filesystem;

namespace {

// Command-line options of one tool: `--name value` pairs, flags and positional arguments.
class Args {
 public:
  Args(const std::vector<std::string>& args, const std::vector<std::string>& valued, const std::vector<std::string>& flags) {
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      const std::string name = a == "-o" ? "--out" : a;
      if (std::find(valued.begin(), valued.end(), name) != valued.end()) {
        if (i + 1 >= args.size()) throw InputError(a, "needs a value");
        values_.emplace(name, args[++i]);
      } else if (std::find(flags.begin(), flags.end(), name) != flags.end()) {
        values_.emplace(name, "");
      } else if (a.size() > 1 && a[0] == '-') {
        throw InputError(a, "unknown option (rmai trace --help)");
      } else {
        positional_.push_back(a);
      }
    }
  }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> get(const std::string& name) const {
    const auto it = values_.find(name);
    return it == values_.end() ? std::nullopt : std::optional(it->second);
  }
  std::string required(const std::string& name) const {
    if (auto value = get(name)) return *value;
    throw InputError(name, "is required (rmai trace --help)");
  }
  std::vector<std::string> all(const std::string& name) const {
    std::vector<std::string> out;
    for (auto [it, end] = values_.equal_range(name); it != end; ++it) out.push_back(it->second);
    return out;
  }
  const std::vector<std::string>& positional() const { return positional_; }
  std::string one_positional(const char* what) const {
    if (positional_.size() != 1) throw InputError("", std::string("expected one ") + what + " argument");
    return positional_[0];
  }

 private:
  std::multimap<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

std::uint64_t count_option(const Args& args, const std::string& name, std::uint64_t fallback) {
  const auto text = args.get(name);
  if (!text) return fallback;
  std::uint64_t value = 0;
  std::istringstream in(*text);
  if (!(in >> value) || !in.eof() || (*text)[0] == '-') throw InputError(name, "'" + *text + "' is not a non-negative integer");
  return value;
}

// The shape of a trace from --model, else from the file (binary header or a CSV pass).
traces::TraceShape trace_shape(const Args& args, const fs::path& trace) {
  if (const auto model = args.get("--model")) return traces::shape_of(spec::load_model(*model, "--model"));
  return traces::probe_shape(trace);
}

traces::TraceShape shape_option(const Args& args) {
  if (const auto model = args.get("--model")) {
    if (args.has("--shape")) throw InputError("--shape", "give --model or --shape, not both");
    return traces::shape_of(spec::load_model(*model, "--model"));
  }
  const std::string text = args.required("--shape");
  unsigned layers = 0, top_k = 0, experts = 0;
  char c1 = 0, c2 = 0;
  std::istringstream in(text);
  if (!(in >> layers >> c1 >> top_k >> c2 >> experts) || c1 != ',' || c2 != ',' || !in.eof())
    throw InputError("--shape", "'" + text + "' is not LAYERS,TOP_K,EXPERTS");
  const traces::TraceShape shape{layers, top_k, experts};
  try {
    traces::validate(shape);
  } catch (const std::invalid_argument& e) {
    throw InputError("--shape", e.what());
  }
  return shape;
}

// Writes through a temporary file renamed at the end, so a failure leaves nothing at `path`.
void write_file(const fs::path& path, const std::string& content) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  const fs::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary);
    out << content;
    if (!out.flush()) {
      fs::remove(temporary);
      throw std::runtime_error("cannot write " + temporary.string());
    }
  }
  fs::rename(temporary, path);
}

std::string fixed(double value, int digits = 3) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

nlohmann::json stats_json(const traces::TraceStats& s) {
  const auto optional = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
  nlohmann::json out = {{"tokens", s.tokens},
                        {"sequences", s.sequences},
                        {"layers", s.shape.layers},
                        {"top_k", s.shape.top_k},
                        {"experts", s.shape.experts},
                        {"adjacent_reuse", s.adjacent_reuse},
                        {"cross_layer_top1_predictability", optional(s.cross_layer_top1_predictability)},
                        {"cross_layer_mutual_information_bits", optional(s.cross_layer_mutual_information_bits)}};
  out["per_layer"] = nlohmann::json::array();
  for (const auto& l : s.per_layer)
    out["per_layer"].push_back({{"layer", l.layer},
                                {"gini", l.gini},
                                {"top_share", l.top_share},
                                {"entropy_bits", l.entropy_bits},
                                {"adjacent_reuse", l.adjacent_reuse},
                                {"next_top1_predictability", optional(l.next_top1_predictability)},
                                {"next_mutual_information_bits", optional(l.next_mutual_information_bits)},
                                {"popularity", std::vector<double>(l.popularity.begin(), l.popularity.end())}});
  out["working_set"] = nlohmann::json::array();
  for (const auto& w : s.working_set)
    out["working_set"].push_back({{"window_tokens", w.window}, {"experts_per_layer", w.experts_per_layer}});
  return out;
}

void print_stats(const traces::TraceStats& s, std::ostream& out) {
  const auto optional = [](const std::optional<double>& v, int digits = 3) { return v ? fixed(*v, digits) : "-"; };
  out << s.tokens << " tokens in " << s.sequences << " sequence(s); " << s.shape.layers << " MoE layers, top-"
      << s.shape.top_k << " of " << s.shape.experts << " experts\n"
      << "adjacent reuse " << fixed(s.adjacent_reuse) << " (uniform routing: "
      << fixed(double(s.shape.top_k) / s.shape.experts) << "), cross-layer top-1 predictability "
      << optional(s.cross_layer_top1_predictability) << ", mutual information "
      << optional(s.cross_layer_mutual_information_bits) << " bits\n\n"
      << "layer   gini  top_share  entropy_bits  reuse  next_top1_pred  next_mi_bits\n";
  for (const auto& l : s.per_layer) {
    char line[160];
    std::snprintf(line, sizeof line, "%5u  %5.3f  %9.4f  %12.3f  %5.3f  %14s  %12s\n", l.layer, l.gini, l.top_share,
                  l.entropy_bits, l.adjacent_reuse, optional(l.next_top1_predictability).c_str(),
                  optional(l.next_mutual_information_bits).c_str());
    out << line;
  }
  out << "\nworking set (distinct experts per layer in a window of consecutive tokens):\n";
  for (const auto& w : s.working_set)
    out << "  " << w.window << " tokens: " << fixed(w.experts_per_layer, 2) << " of " << s.shape.experts << "\n";
}

std::vector<std::uint32_t> windows_option(const Args& args) {
  const auto text = args.get("--windows");
  if (!text) return {4, 16, 64, 256};
  std::vector<std::uint32_t> windows;
  std::istringstream in(*text);
  for (std::string item; std::getline(in, item, ',');) {
    std::uint64_t value = 0;
    std::istringstream number(item);
    if (!(number >> value) || !number.eof() || value == 0 || value > UINT32_MAX)
      throw InputError("--windows", "'" + *text + "' is not a list of positive token counts like 4,16,64");
    windows.push_back(static_cast<std::uint32_t>(value));
  }
  return windows;
}

}  // namespace

int trace_gen(const std::vector<std::string>& argv) {
  const Args args(argv, {"--model", "--shape", "--generator", "--tokens", "--sequences", "--seed", "--out"}, {});
  if (!args.positional().empty()) throw InputError(args.positional()[0], "unexpected argument");
  const auto shape = shape_option(args);
  const std::uint64_t seed = count_option(args, "--seed", 1);
  const fs::path file = spec::find_generator(args.get("--generator").value_or("default"), "--generator");
  const auto generator = traces::load_generator(file, shape, seed);
  const std::uint64_t tokens = count_option(args, "--tokens", 0);
  if (tokens == 0) throw InputError("--tokens", "give a positive number of tokens");
  const std::uint64_t sequences = count_option(args, "--sequences", 1);
  if (sequences == 0 || sequences > UINT32_MAX) throw InputError("--sequences", "give a positive number of sequences");
  const fs::path out = args.required("--out");
  traces::save_trace(out, traces::generate(generator, tokens, seed, static_cast<std::uint32_t>(sequences)));
  std::cerr << "rmai: " << tokens << " tokens from " << file.string() << " (seed " << seed << ") in " << out.string()
            << "\n";
  return 0;
}

int trace_stats(const std::vector<std::string>& argv) {
  const Args args(argv, {"--model", "--windows"}, {"--json"});
  const fs::path trace = args.one_positional("TRACE");
  const auto shape = trace_shape(args, trace);
  const auto windows = windows_option(args);
  auto source = traces::open_trace(trace, shape);
  const auto stats = traces::summarize(traces::RoutingCounts::of(*source, shape, windows));
  if (stats.tokens == 0) throw InputError(trace.string(), "the trace has no tokens");
  if (args.has("--json"))
    std::cout << stats_json(stats).dump(1) << "\n";
  else
    print_stats(stats, std::cout);
  return 0;
}

int trace_fit(const std::vector<std::string>& argv) {
  const Args args(argv,
                  {"--model", "--counts", "--pairs", "--where", "--reuse", "--seed", "--tokens", "--description", "--out"},
                  {});
  const fs::path out = args.required("--out");
  traces::FitOptions options;
  options.seed = count_option(args, "--seed", 1);
  options.calibration_tokens = count_option(args, "--tokens", options.calibration_tokens);
  if (options.calibration_tokens < 100) throw InputError("--tokens", "calibrate on at least 100 tokens");

  traces::FitTargets targets;
  if (const auto tables = args.get("--counts")) {
    if (!args.positional().empty()) throw InputError(args.positional()[0], "give a trace or --counts, not both");
    const auto shape = traces::shape_of(spec::load_model(args.required("--model"), "--model"));
    std::map<std::string, std::string> where;
    for (const auto& item : args.all("--where")) {
      const auto eq = item.find('=');
      if (eq == std::string::npos || eq == 0) throw InputError("--where " + item, "expected COLUMN=VALUE");
      where[item.substr(0, eq)] = item.substr(eq + 1);
    }
    double reuse = 0;
    try {
      reuse = std::stod(args.required("--reuse"));
    } catch (const std::logic_error&) {
      throw InputError("--reuse", "expected the observed adjacent reuse, a number in [0, 1]");
    }
    targets = traces::targets_from_tables(*tables, args.get("--pairs").value_or(""), where, shape, reuse, options.seed);
  } else {
    for (const char* option : {"--pairs", "--where", "--reuse"})
      if (args.has(option)) throw InputError(option, "only used with --counts");
    const fs::path trace = args.one_positional("TRACE");
    const auto shape = trace_shape(args, trace);
    auto source = traces::open_trace(trace, shape);
    const auto counts = traces::RoutingCounts::of(*source, shape, {});
    if (counts.tokens() == 0) throw InputError(trace.string(), "the trace has no tokens");
    targets = traces::targets_of(counts);
    targets.source = trace.string() + " (" + std::to_string(counts.tokens()) + " tokens)";
  }
  auto generator = traces::fit(targets, options);
  if (const auto description = args.get("--description")) generator.description = *description;

  // Check the fit on a trace of its own (another seed) and say how close it came.
  const auto check = traces::summarize(traces::RoutingCounts::of(
      traces::generate(generator, options.calibration_tokens, options.seed + 1), {}));
  double worst_tvd = 0, worst_reuse = 0;
  for (const auto l : targets.measured) {
    worst_tvd = std::max(worst_tvd, traces::total_variation(check.per_layer[l].popularity, targets.popularity[l]));
    worst_reuse = std::max(worst_reuse, std::abs(check.per_layer[l].adjacent_reuse - targets.reuse[l]));
  }
  std::ostringstream text;
  text << "# command: rmai trace fit";
  for (const auto& a : argv) text << " " << (a.find(' ') == std::string::npos ? a : "\"" + a + "\"");
  text << "\n# check on " << options.calibration_tokens << " generated tokens: popularity TVD <= " << fixed(worst_tvd, 4)
       << ", adjacent reuse within " << fixed(worst_reuse, 4) << " on the measured layers\n";
  traces::write_generator(generator, text);
  write_file(out, text.str());
  std::cerr << "rmai: generator written to " << out.string() << "; check: popularity TVD <= " << fixed(worst_tvd, 4)
            << ", adjacent reuse within " << fixed(worst_reuse, 4) << "\n";
  return 0;
}

}  // namespace rmai::cli
