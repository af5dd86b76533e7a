// `rmai trace`: the routing-trace tools of docs/interfaces.md, one subcommand each.
#include "cli/commands.hpp"
#include "cli/options.hpp"

namespace rmai::cli {

void add_trace_commands(CLI::App& root) {
  CLI::App* trace = add_command(root, "trace", "Routing-trace tools: import, convert, gen, fit, stats");
  trace->footer(
      "A trace is the canonical CSV or the binary form (recognized by its content). Without --model the shape is\n"
      "read from a binary header or inferred from a CSV (experts: the largest id + 1).");
  add_trace_import(*trace);
  add_trace_convert(*trace);
  add_trace_tools(*trace);
}

}  // namespace rmai::cli
