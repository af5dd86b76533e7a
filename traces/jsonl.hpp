#pragma once
// Import of vLLM-style routing logs (docs/interfaces.md, "Traces"): one JSON object per line with
// `layer`, `experts`, `token_idx`, a sequence key (`problem_id`, `request_id` or `seq`, a string or
// an integer), optional `gating_probs` and an optional `phase` ("prefill" or "decode", the
// default). Records may come in any order (layer-major, token-major, sequences interleaved), so the
// whole log is collected before tokens are emitted.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "traces/trace.hpp"

namespace rmai::traces {

struct ImportOptions {
  // The model's shape (layers = its MoE layers); unset: inferred from the records (top_k from the
  // records, experts = the largest id + 1, layers = the distinct layer ids).
  std::optional<TraceShape> shape;
  // When non-zero, layer ids must be below this (the model's layers, dense ones included: logs may
  // number absolute layers).
  std::uint32_t layer_id_limit = 0;
  // The model's MoE layers as absolute layer indices (ascending). When given, the log's layer ids
  // must be either these (absolute numbering) or 0..shape.layers-1 (MoE layers counted alone).
  std::vector<std::uint32_t> moe_layer_ids;
  std::string model;  // names the shape's source in messages, e.g. "mixtral-8x7b"
};

struct ImportReport {
  std::size_t records = 0;
  std::size_t tokens_kept = 0;
  std::size_t tokens_dropped = 0;  // tokens lacking some layer: dropped, never filled in
  // The first few dropped tokens: (sequence key as written in the log, token_idx, layers present).
  struct Dropped {
    std::string sequence;
    std::uint32_t token_idx;
    std::uint32_t layers;
  };
  std::vector<Dropped> first_dropped;
  std::string sequence_field;               // which key named sequences: problem_id, request_id or seq
  std::vector<std::string> sequences;       // key as written (JSON) of trace sequence 0, 1, ...
  std::vector<std::uint32_t> layer_ids;     // ascending; layer_ids[i] is MoE layer i
  bool gating_probs = false;                // some kept record had gating_probs
};

struct ImportResult {
  RoutingTrace trace;
  ImportReport report;
};

// Reads the log. Sequences are numbered 0, 1, ... in order of first appearance; the trace holds the
// tokens of sequence 0 by increasing token_idx, then sequence 1, ...; experts keep the record's
// order (rank order), gating_probs become the token weights, phase the token's phase (all records
// of a token must agree, and a sequence's prefill tokens come before its first decode token by
// token_idx, as in the CSV). Errors in the file are rmai::InputError located "file:line" (or
// "file" when no line is to blame).
ImportResult import_jsonl(const std::filesystem::path& path, const ImportOptions& options = {});

// Ascending ids as short ranges, "0-31" or "1, 3-5, 9" (the first dozen ranges, then "...").
std::string id_ranges(const std::vector<std::uint32_t>& ids);

}  // namespace rmai::traces
