// `rmai trace convert TRACE -o OUT [--model NAME]`: between the canonical CSV and the binary form.
// The output's form follows its extension (.rmtrace: binary, else CSV); the input's is sniffed.
#include <iostream>

#include "cli/commands.hpp"
#include "config/errors.hpp"
#include "spec/experiment.hpp"
#include "traces/trace.hpp"

namespace rmai::cli {

int trace_convert(const std::vector<std::string>& args) {
  constexpr const char* kUsage = "usage: rmai trace convert TRACE -o OUT [--model NAME]";
  std::string input, output, model;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const auto value = [&] {
      if (i + 1 >= args.size()) throw InputError(a, std::string("needs a value (") + kUsage + ")");
      return args[++i];
    };
    if (a == "-o") {
      output = value();
    } else if (a == "--model") {
      model = value();
    } else if (a.size() > 1 && a[0] == '-') {
      throw InputError(a, std::string("unknown option (") + kUsage + ")");
    } else if (input.empty()) {
      input = a;
    } else {
      throw InputError(a, std::string("unexpected argument: one input trace (") + kUsage + ")");
    }
  }
  if (input.empty()) throw InputError("", std::string("no input trace given (") + kUsage + ")");
  if (output.empty()) throw InputError("", std::string("no output given (") + kUsage + ")");

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

}  // namespace rmai::cli
