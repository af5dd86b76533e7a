// `rmai trace convert TRACE -o OUT [--model NAME]`: between the canonical CSV and the binary form.
// The output's form follows its extension (.rmtrace: binary, else CSV); the input's is sniffed.
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "config/errors.hpp"
#include "spec/experiment.hpp"
#include "traces/trace.hpp"

namespace rmai::cli {

namespace {

struct ConvertArgs {
  std::string input, output, model;
};

int trace_convert(const ConvertArgs& a) {
  const std::string& input = a.input;
  const std::string& output = a.output;
  const std::string& model = a.model;
  traces::TraceShape shape{};
  if (model.empty()) {
    shape = traces::probe_shape(input);
  } else {
    const auto m = spec::load_model(model, "--model");
    shape = {m.moe_layers, m.top_k, m.experts};
  }
  auto source = traces::open_trace(input, shape);
  const auto trace = traces::RoutingTrace::load(*source, shape);
  traces::save_trace(output, trace);
  std::cerr << "rmai: wrote " << trace.tokens() << " tokens to " << output << "\n";
  return 0;
}

}  // namespace

void add_trace_convert(CLI::App& trace) {
  const auto a = std::make_shared<ConvertArgs>();
  CLI::App* app = add_command(trace, "convert",
                              "Between the canonical CSV (.csv) and the binary form (.rmtrace), by OUT's extension",
                              [a] { return trace_convert(*a); });
  app->add_option("TRACE", a->input, "input trace")->required();
  add_value(app, "-o,--out", a->output, "the trace to write")->type_name("OUT")->required();
  add_value(app, "--model", a->model, "a model in models/moe: the trace's shape (default: from the file)")
      ->type_name("NAME");
}

}  // namespace rmai::cli
