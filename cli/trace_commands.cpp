// `rmai trace`: the routing-trace tools of docs/interfaces.md, one subcommand each.
#include <iostream>

#include "cli/commands.hpp"

namespace rmai::cli {
namespace {

constexpr const char* kTraceUsage = R"(usage: rmai trace <tool> [options]

tools:
  import --format jsonl FILE -o OUT [--model NAME]
                       vLLM-style routing logs (JSON lines) to a canonical trace
  convert TRACE -o OUT [--model NAME]
                       between the canonical CSV (.csv) and the binary form (.rmtrace)
  gen (--model NAME | --shape LAYERS,TOP_K,EXPERTS) [--generator NAME|FILE] --tokens N
      [--sequences B] [--seed S] -o OUT
                       a synthetic trace from a generator (models/synthetic or a fitted GEN.yaml);
                       B sequences are decoded as one batch (interleaved round-robin)
  fit TRACE [--model NAME] -o GEN.yaml
  fit --counts COUNTS.csv [--pairs PAIRS.csv] [--where COLUMN=VALUE]... --model NAME --reuse R -o GEN.yaml
                       estimate a generator from a trace, or from expert count tables (R: the
                       observed adjacent reuse, which tables cannot show); both take
                       [--tokens N] (calibration length) [--seed S] [--description TEXT]
  stats TRACE [--model NAME] [--json] [--windows 4,16,64,256]
                       popularity, skew, reuse, cross-layer predictability, working sets

A trace is the canonical CSV or the binary form (recognized by its content). Without --model the
shape is read from a binary header or inferred from a CSV (experts: the largest id + 1).
)";

}  // namespace

int trace(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::cout << kTraceUsage;
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "import") return trace_import(rest);
  if (args[0] == "convert") return trace_convert(rest);
  if (args[0] == "gen") return trace_gen(rest);
  if (args[0] == "fit") return trace_fit(rest);
  if (args[0] == "stats") return trace_stats(rest);
  std::cerr << "rmai: unknown trace tool \"" << args[0] << "\"\n" << kTraceUsage;
  return 2;
}

}  // namespace rmai::cli
