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
#include "cli/options.hpp"
#include "config/errors.hpp"
#include "config/units.hpp"
#include "posix/files.hpp"
#include "spec/experiment.hpp"
#include "traces/experiment_trace.hpp"
#include "traces/fit.hpp"
#include "traces/generator.hpp"
#include "traces/stats.hpp"

namespace rmai::cli {
namespace fs = std::filesystem;

namespace {

// The options of gen, fit and stats; each tool adds those it takes.
struct ToolArgs {
  std::optional<std::string> model, shape, generator, tokens, sequences, prompt, seed, windows, counts, pairs,
      reuse, description;
  std::vector<std::string> where;
  std::string trace, out;
  bool json = false;
};

void add(CLI::App* app, const std::string& names, std::optional<std::string>& slot, const std::string& description,
         const std::string& type) {
  add_each(app, names, [&slot](const std::string& v) { slot = v; }, description)->type_name(type);
}

std::string required(const std::optional<std::string>& value, const std::string& name, const CLI::App& app) {
  if (value) return *value;
  throw InputError(name, "is required (" + command_path(app) + " --help)");
}

std::uint64_t count_option(const std::optional<std::string>& text, const std::string& name, std::uint64_t fallback) {
  return text ? parse_count(name, *text) : fallback;
}

// The shape of a trace from --model, else from the file (binary header or a CSV pass).
traces::TraceShape trace_shape(const ToolArgs& args, const fs::path& trace) {
  if (args.model) return traces::shape_of(spec::load_model(*args.model, "--model"));
  return traces::probe_shape(trace);
}

traces::TraceShape shape_option(const ToolArgs& args, const CLI::App& app) {
  if (args.model) {
    if (args.shape) throw InputError("--shape", "give --model or --shape, not both");
    return traces::shape_of(spec::load_model(*args.model, "--model"));
  }
  const std::string text = required(args.shape, "--shape", app);
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
  // per_layer[l][i]: layer l at batch[i], parallel to `batch` like `mean`.
  nlohmann::json batch = nlohmann::json::array(), mean = nlohmann::json::array(), per_layer = nlohmann::json::array();
  for (const auto& u : s.batch_union) {
    batch.push_back(u.batch);
    mean.push_back(u.mean);
  }
  for (std::uint32_t l = 0; l < s.shape.layers; ++l) {
    per_layer.push_back(nlohmann::json::array());
    for (const auto& u : s.batch_union) per_layer.back().push_back(u.per_layer[l]);
  }
  out["batch_union"] = {
      {"decode_tokens", s.decode_tokens}, {"batch", batch}, {"mean", mean}, {"per_layer", per_layer}};
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
  out << "\nexpected experts per layer in a batch of B";
  if (s.decode_tokens == 0) {
    out << ": none, the trace has no decode tokens\n";
    return;
  }
  out << " (decode tokens drawn at random):";
  for (std::size_t i = 0; i < s.batch_union.size(); ++i)
    out << (i ? ", " : " ") << s.batch_union[i].batch << ": " << fixed(s.batch_union[i].mean, 2);
  out << "\n";
}

std::vector<std::uint32_t> windows_option(const ToolArgs& args) {
  const auto& text = args.windows;
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

int trace_gen(const ToolArgs& args, const CLI::App& app) {
  const auto shape = shape_option(args, app);
  const std::uint64_t seed = count_option(args.seed, "--seed", 1);
  const fs::path file = spec::find_generator(args.generator.value_or("default"), "--generator");
  const auto generator = traces::load_generator(file, shape, seed);
  const std::uint64_t tokens = count_option(args.tokens, "--tokens", 0);
  if (tokens == 0) throw InputError("--tokens", "give a positive number of tokens");
  if (tokens > UINT32_MAX)  // token positions in a trace are 32-bit
    throw InputError("--tokens", std::to_string(tokens) + " tokens: at most 4294967295");
  const std::uint64_t sequences = count_option(args.sequences, "--sequences", 1);
  if (sequences == 0 || sequences > UINT32_MAX) throw InputError("--sequences", "give a positive number of sequences");
  const std::uint64_t prompt = count_option(args.prompt, "--prompt", 0);
  if (prompt > UINT32_MAX || tokens + prompt * sequences > UINT32_MAX)  // the first test bounds the product
    throw InputError("--prompt", std::to_string(prompt) + " prefill tokens per sequence: the trace would have more "
                                 "than 4294967295 tokens");
  const std::uint64_t all = tokens + prompt * sequences;
  const fs::path out = args.out;
  // Streamed to the file: memory stays flat however many tokens are asked for.
  const auto source = traces::synthetic_source(generator, tokens, seed, static_cast<std::uint32_t>(sequences),
                                               static_cast<std::uint32_t>(prompt));
  traces::save_trace(out, *source, shape, all, false, prompt > 0);
  std::cerr << "rmai: " << all << " tokens";
  if (prompt > 0) std::cerr << " (" << prompt * sequences << " prefill, " << tokens << " decode)";
  std::cerr << " from " << file.string() << " (seed " << seed << ") in " << out.string() << "\n";
  return 0;
}

int trace_stats(const ToolArgs& args) {
  const fs::path trace = args.trace;
  const auto shape = trace_shape(args, trace);
  const auto windows = windows_option(args);
  auto source = traces::open_trace(trace, shape);
  const auto stats = traces::summarize(traces::RoutingCounts::of(*source, shape, windows));
  if (stats.tokens == 0) throw InputError(trace.string(), "the trace has no tokens");
  if (args.json)
    std::cout << stats_json(stats).dump(1) << "\n";
  else
    print_stats(stats, std::cout);
  return 0;
}

int trace_fit(const ToolArgs& args, const CLI::App& app) {
  const fs::path out = args.out;
  traces::FitOptions options;
  options.seed = count_option(args.seed, "--seed", 1);
  options.calibration_tokens = count_option(args.tokens, "--tokens", options.calibration_tokens);
  if (options.calibration_tokens < 100) throw InputError("--tokens", "calibrate on at least 100 tokens");

  traces::FitTargets targets;
  if (const auto& tables = args.counts) {
    if (!args.trace.empty()) throw InputError(args.trace, "give a trace or --counts, not both");
    const auto shape = traces::shape_of(spec::load_model(required(args.model, "--model", app), "--model"));
    std::map<std::string, std::string> where;
    for (const auto& item : args.where) {
      const auto eq = item.find('=');
      if (eq == std::string::npos || eq == 0) throw InputError("--where " + item, "expected COLUMN=VALUE");
      where[item.substr(0, eq)] = item.substr(eq + 1);
    }
    double reuse = 0;
    try {
      reuse = std::stod(required(args.reuse, "--reuse", app));
    } catch (const std::logic_error&) {
      throw InputError("--reuse", "expected the observed adjacent reuse, a number in [0, 1]");
    }
    targets = traces::targets_from_tables(*tables, args.pairs.value_or(""), where, shape, reuse, options.seed);
  } else {
    if (args.pairs) throw InputError("--pairs", "only used with --counts");
    if (!args.where.empty()) throw InputError("--where", "only used with --counts");
    if (args.reuse) throw InputError("--reuse", "only used with --counts");
    if (args.trace.empty()) throw InputError("", "no trace given: TRACE or --counts (" + command_path(app) + " --help)");
    const fs::path trace = args.trace;
    const auto shape = trace_shape(args, trace);
    auto source = traces::open_trace(trace, shape);
    const auto counts = traces::RoutingCounts::of(*source, shape, {});
    if (counts.tokens() == 0) throw InputError(trace.string(), "the trace has no tokens");
    targets = traces::targets_of(counts);
    targets.source = trace.string() + " (" + std::to_string(counts.tokens()) + " tokens)";
  }
  auto generator = traces::fit(targets, options);
  if (args.description) generator.description = *args.description;

  // Check the fit on a trace of its own (another seed) and say how close it came.
  const auto check = traces::summarize(traces::RoutingCounts::of(
      traces::generate(generator, options.calibration_tokens, options.seed + 1), {}));
  double worst_tvd = 0, worst_reuse = 0;
  for (const auto l : targets.measured) {
    worst_tvd = std::max(worst_tvd, traces::total_variation(check.per_layer[l].popularity, targets.popularity[l]));
    worst_reuse = std::max(worst_reuse, std::abs(check.per_layer[l].adjacent_reuse - targets.reuse[l]));
  }
  std::ostringstream text;
  text << "# command: rmai";
  for (const auto& a : command_line()) text << " " << (a.find(' ') == std::string::npos ? a : "\"" + a + "\"");
  text << "\n# check on " << options.calibration_tokens << " generated tokens: popularity TVD <= " << fixed(worst_tvd, 4)
       << ", adjacent reuse within " << fixed(worst_reuse, 4) << " on the measured layers\n";
  traces::write_generator(generator, text);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  posix::write_file_atomic(out, text.str());
  std::cerr << "rmai: generator written to " << out.string() << "; check: popularity TVD <= " << fixed(worst_tvd, 4)
            << ", adjacent reuse within " << fixed(worst_reuse, 4) << "\n";
  return 0;
}

}  // namespace

void add_trace_tools(CLI::App& trace) {
  const auto a = std::make_shared<ToolArgs>();
  const std::string model = "a model in models/moe: the trace's shape";
  CLI::App* gen = add_command(trace, "gen",
                              "A synthetic trace from a generator (models/synthetic or a fitted GEN.yaml)", {});
  gen->footer(
      "B independent sequences (--sequences), interleaved round-robin. With --prompt P each "
      "sequence first has P prefill tokens (its prompt), right before its first decode token; --tokens counts "
      "decode tokens.");
  add(gen, "--model", a->model, model, "NAME");
  add(gen, "--shape", a->shape, "the shape without a model", "LAYERS,TOP_K,EXPERTS");
  add(gen, "--generator", a->generator, "a generator in models/synthetic, or a GEN.yaml (default: default)", "NAME|FILE");
  add(gen, "--tokens", a->tokens, "tokens to generate", "N");
  add(gen, "--sequences", a->sequences, "independent sequences, interleaved (default 1)", "B");
  add(gen, "--prompt", a->prompt, "prefill tokens per sequence before its decode tokens (default 0)", "P");
  add(gen, "--seed", a->seed, "default 1", "S");
  add_value(gen, "-o,--out", a->out, "the trace to write (.csv, or .rmtrace for the binary form)")
      ->type_name("OUT")
      ->required();
  set_action(*gen, [a, gen] { return trace_gen(*a, *gen); });

  CLI::App* fit = add_command(trace, "fit",
                              "Estimate a generator from a trace, or from expert count tables (--counts)", {});
  fit->footer("With --counts, --reuse R gives the observed adjacent reuse, which tables cannot show.");
  fit->add_option("TRACE", a->trace, "trace to fit");
  add(fit, "--model", a->model, model, "NAME");
  add(fit, "--counts", a->counts, "expert count table", "COUNTS.csv");
  add(fit, "--pairs", a->pairs, "expert pair count table (with --counts)", "PAIRS.csv");
  add_values(fit, "--where", a->where, "rows of the tables to use (repeatable; with --counts)")->type_name("COLUMN=VALUE");
  add(fit, "--reuse", a->reuse, "the observed adjacent reuse in [0, 1] (with --counts)", "R");
  add(fit, "--tokens", a->tokens, "calibration length", "N");
  add(fit, "--seed", a->seed, "default 1", "S");
  add(fit, "--description", a->description, "the generator's description", "TEXT");
  add_value(fit, "-o,--out", a->out, "the generator to write")->type_name("GEN.yaml")->required();
  set_action(*fit, [a, fit] { return trace_fit(*a, *fit); });

  CLI::App* stats = add_command(
      trace, "stats", "Popularity, skew, reuse, cross-layer predictability, working sets and batch unions of a trace",
      [a] { return trace_stats(*a); });
  stats->add_option("TRACE", a->trace, "trace")->required();
  add(stats, "--model", a->model, model, "NAME");
  stats->add_flag("--json", a->json, "print JSON");
  add(stats, "--windows", a->windows, "working-set windows in tokens (default 4,16,64,256)", "4,16,...");
}

}  // namespace rmai::cli
