// `rmai trace import --format jsonl FILE -o OUT [--model NAME]`: a routing log to a canonical trace.
#include <iostream>
#include <string>

#include "cli/commands.hpp"
#include "config/errors.hpp"
#include "traces/jsonl.hpp"
#include "spec/experiment.hpp"
#include "traces/trace.hpp"

namespace rmai::cli {
namespace {

constexpr const char* kFormats = "jsonl";

std::string count(std::size_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

struct ImportArgs {
  std::string format, file, out, model;
};

ImportArgs parse_import(const std::vector<std::string>& args) {
  ImportArgs a;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const auto value = [&](const std::string& flag) -> std::string {
      if (i + 1 >= args.size()) throw InputError(flag, "needs a value");
      return args[++i];
    };
    const auto option = [&](const std::string& flag, std::string& into) {
      if (arg == flag) {
        into = value(flag);
        return true;
      }
      if (arg.rfind(flag + "=", 0) == 0) {
        into = arg.substr(flag.size() + 1);
        return true;
      }
      return false;
    };
    if (option("--format", a.format) || option("--out", a.out) || option("-o", a.out) ||
        option("--model", a.model))
      continue;
    if (!arg.empty() && arg[0] == '-' && arg != "-") throw InputError(arg, "unknown option");
    if (!a.file.empty()) throw InputError(arg, "unexpected argument (one log file per import)");
    a.file = arg;
  }
  if (a.format.empty())
    throw InputError("--format", std::string("required (supported formats: ") + kFormats + ")");
  if (a.format != "jsonl")
    throw InputError("--format", "unknown format \"" + a.format + "\" (supported formats: " +
                                     kFormats + ")");
  if (a.file.empty()) throw InputError("", "no log file given");
  if (a.out.empty()) throw InputError("-o", "the output trace is required (-o OUT.csv or OUT.rmtrace)");
  return a;
}

}  // namespace

int trace_import(const std::vector<std::string>& args) {
  const ImportArgs a = parse_import(args);
  traces::ImportOptions options;
  if (!a.model.empty()) {
    const spec::MoeModel model = spec::load_model(a.model, "--model");
    options.shape = traces::TraceShape{model.moe_layers, model.top_k, model.experts};
    options.layer_id_limit = model.layers;
    for (std::uint32_t i = 0; i < model.moe_layers; ++i) options.moe_layer_ids.push_back(model.moe_layer_index(i));
    options.model = model.name;
  }
  const traces::ImportResult result = traces::import_jsonl(a.file, options);
  traces::save_trace(a.out, result.trace);  // only once the whole log was read

  const traces::ImportReport& r = result.report;
  const traces::TraceShape& shape = result.trace.shape();
  std::cerr << "rmai: imported " << count(r.tokens_kept, "token") << " of "
            << count(r.sequences.size(), "sequence") << " (key " << r.sequence_field << ") from "
            << count(r.records, "record") << " into " << a.out << ": " << shape.layers
            << " MoE layers, top_k " << shape.top_k << ", " << shape.experts << " experts, "
            << (r.gating_probs ? "with" : "no") << " gating probs\n";
  std::cerr << "rmai: log layers " << traces::id_ranges(r.layer_ids) << " are MoE layers 0-"
            << shape.layers - 1 << " in that order\n";
  if (r.tokens_dropped > 0) {
    std::cerr << "rmai: dropped " << count(r.tokens_dropped, "token") << " lacking some of the "
              << shape.layers << " layers:";
    for (std::size_t i = 0; i < r.first_dropped.size(); ++i)
      std::cerr << (i ? "," : "") << " token " << r.first_dropped[i].token_idx << " of sequence "
                << r.first_dropped[i].sequence << " (" << r.first_dropped[i].layers << " layers)";
    std::cerr << (r.tokens_dropped > r.first_dropped.size() ? ", ...\n" : "\n");
  }
  return 0;
}

}  // namespace rmai::cli
