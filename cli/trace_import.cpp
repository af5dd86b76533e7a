// `rmai trace import --format jsonl FILE -o OUT [--model NAME]`: a routing log to a canonical trace.
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "cli/options.hpp"
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

// What the parser leaves to be checked, with the messages of the other bad-input errors.
void check(const ImportArgs& a) {
  if (a.format.empty())
    throw InputError("--format", std::string("required (supported formats: ") + kFormats + ")");
  if (a.format != "jsonl")
    throw InputError("--format", "unknown format \"" + a.format + "\" (supported formats: " +
                                     kFormats + ")");
  if (a.file.empty()) throw InputError("", "no log file given");
  if (a.out.empty()) throw InputError("-o", "the output trace is required (-o OUT.csv or OUT.rmtrace)");
}

int trace_import(const ImportArgs& a) {
  check(a);
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

}  // namespace

void add_trace_import(CLI::App& trace) {
  const auto a = std::make_shared<ImportArgs>();
  CLI::App* app = add_command(trace, "import",
                              "vLLM-style routing logs (JSON lines) to a canonical trace",
                              [a] { return trace_import(*a); });
  app->footer(
      "One JSON object per line: layer, experts, token_idx, a sequence key (problem_id, request_id or seq), "
      "optional gating_probs; any record order. Tokens missing a layer are reported and dropped.");
  app->add_option("FILE", a->file, "the routing log");
  add_value(app, "--format", a->format, std::string("the log's format: ") + kFormats)->type_name("FORMAT");
  add_value(app, "-o,--out", a->out, "the trace to write (.csv, or .rmtrace for the binary form)")->type_name("OUT");
  add_value(app, "--model", a->model, "a model in models/moe: its shape and layer ids (default: from the log)")
      ->type_name("NAME");
}

}  // namespace rmai::cli
