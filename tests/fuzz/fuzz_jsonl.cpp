// libFuzzer target: the JSON-lines routing-log importer on arbitrary bytes, with an inferred shape
// and with a model's shape. rmai::InputError is the expected answer to bad input; any other
// exception, a crash, a sanitizer report or a hang is a finding. An imported trace must also go
// through the CSV and read back equal (what `rmai trace import` writes).
#include <cstddef>
#include <cstdint>
#include <sstream>

#include "config/errors.hpp"
#include "traces/jsonl.hpp"
#include "memfile.hpp"
#include "traces/trace.hpp"

using namespace rmai::traces;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static rmai::fuzz::MemFile input("jsonl"), csv_file("jsonl-csv");
  ImportOptions model;
  model.shape = TraceShape{2, 2, 8};
  model.layer_id_limit = 4;
  model.model = "fuzz";
  for (const ImportOptions& options : {ImportOptions{}, model}) {
    try {
      const ImportResult result = import_jsonl(input.write(data, size), options);
      const TraceShape shape = result.trace.shape();
      if (result.report.tokens_kept != result.trace.tokens() || result.trace.tokens() == 0)
        __builtin_trap();
      std::ostringstream csv;
      write_csv(result.trace, csv);
      const std::string text = csv.str();
      const auto reread = open_csv(csv_file.write(text.data(), text.size()), shape);
      if (!(RoutingTrace::load(*reread, shape) == result.trace)) __builtin_trap();
    } catch (const rmai::InputError&) {
    }
  }
  return 0;
}
