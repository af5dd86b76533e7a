#pragma once
// MoE routing traces: which experts each token chose at each MoE layer.
// The canonical exchange format is the CSV of docs/interfaces.md ("Traces"); the replay works on the
// compact in-memory RoutingTrace. Synthetic traces: generator.hpp; statistics: stats.hpp.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace rmai::traces {

// From the model: MoE layers, routed experts chosen per token-layer, experts per layer.
struct TraceShape {
  std::uint32_t layers;
  std::uint32_t top_k;
  std::uint32_t experts;
  friend bool operator==(const TraceShape&, const TraceShape&) = default;
};

// The largest shapes a trace may have (docs/interfaces.md, "Bounds on input sizes"): far above
// any catalog model (61 layers, top-8, 256 experts), small enough that a token record and the
// per-layer tables stay small whatever a file's header or rows claim.
inline constexpr std::uint32_t kMaxLayers = 512;
inline constexpr std::uint32_t kMaxTopK = 64;
inline constexpr std::uint32_t kMaxExperts = 65536;  // ids are stored in 16 bits

// Throws std::invalid_argument if no trace can have this shape: a zero size, top_k > experts, or a
// size beyond the bounds above.
void validate(const TraceShape& shape);

// Routing of one token: experts[layer * top_k + k], in the router's rank order (top-1 first).
struct Token {
  std::uint32_t seq;
  std::uint32_t index;  // position of the token in its sequence
  std::vector<std::uint16_t> experts;
  // Gate weights, parallel to `experts`, or empty when the token has none. A layer whose row had
  // no weights holds NaN (kNoWeight) so that writing the token back gives the same row.
  std::vector<float> weights;
};

inline constexpr float kNoWeight = __builtin_nanf("");

// A source of tokens read one at a time (a file is streamed, never loaded whole by the reader).
class TraceSource {
 public:
  virtual ~TraceSource() = default;
  // Fills `token` with the next complete token; false at the end of the trace.
  virtual bool next(Token& token) = 0;
};

// A trace held in memory, token-major, compact (16-bit expert ids): what the replay uses.
class RoutingTrace {
 public:
  explicit RoutingTrace(TraceShape shape);  // validates the shape
  // Throws std::invalid_argument if the token does not fit the shape (programming error: sources
  // validate their input before).
  void append(const Token& token);
  std::size_t tokens() const { return seqs_.size(); }
  const TraceShape& shape() const { return shape_; }
  std::uint32_t seq(std::size_t token) const { return seqs_[token]; }
  std::uint32_t index(std::size_t token) const { return indices_[token]; }
  // The top_k expert ids of a token at a layer.
  std::span<const std::uint16_t> experts(std::size_t token, std::uint32_t layer) const {
    return {experts_.data() + (token * shape_.layers + layer) * shape_.top_k, shape_.top_k};
  }
  // Gate weights of a token at a layer (NaN: none given); empty when the trace has no weights.
  std::span<const float> weights(std::size_t token, std::uint32_t layer) const {
    if (weights_.empty()) return {};
    return {weights_.data() + (token * shape_.layers + layer) * shape_.top_k, shape_.top_k};
  }
  // All layers of a token at once, laid out as in Token.
  std::span<const std::uint16_t> experts(std::size_t token) const {
    return {experts_.data() + token * per_token(), per_token()};
  }
  std::span<const float> weights(std::size_t token) const {
    if (weights_.empty()) return {};
    return {weights_.data() + token * per_token(), per_token()};
  }
  bool has_weights() const { return !weights_.empty(); }
  static RoutingTrace load(TraceSource& source, TraceShape shape);
  // Equal tokens and equal weights (NaN, meaning no weight, equals NaN).
  friend bool operator==(const RoutingTrace& a, const RoutingTrace& b);

 private:
  std::size_t per_token() const { return std::size_t{shape_.layers} * shape_.top_k; }
  TraceShape shape_;
  std::vector<std::uint32_t> seqs_;
  std::vector<std::uint32_t> indices_;
  std::vector<std::uint16_t> experts_;  // tokens * layers * top_k
  std::vector<float> weights_;          // empty, or parallel to experts_ once any token had weights
};

// Canonical CSV (seq,token,layer,experts,weights; weights optional) validated against the shape.
// Errors in the file are rmai::InputError located "file:line". Tokens of different sequences may
// interleave (batched decode); within a sequence token indices must increase, and the rows of one
// token must be contiguous and cover layers 0..layers-1 in order. Weights are kept as floats.
std::unique_ptr<TraceSource> open_csv(const std::filesystem::path& path, TraceShape shape);

// Writes a trace token by token, so that a trace never has to be held whole to be written (a
// generated one, say). Records are formatted into a block buffer that goes to the stream in large
// writes. The binary header announces the token count and whether records carry weights before
// the first record, so both are given up front, for either form, and checked as tokens come.
class TraceWriter {
 public:
  virtual ~TraceWriter() = default;
  // One token: experts[layer * top_k + k], and its weights parallel to them or empty (none; a row
  // of NaN is none too). Throws std::logic_error (a programming error) for a token of the wrong
  // size, weights when none were announced, or one token more than announced.
  void write(std::uint32_t seq, std::uint32_t index, std::span<const std::uint16_t> experts,
             std::span<const float> weights);
  void write(const Token& token) { write(token.seq, token.index, token.experts, token.weights); }
  void write(const RoutingTrace& trace);  // all its tokens
  // Writes out the buffer; throws std::logic_error unless exactly the announced tokens came. A
  // writer dropped without finish() (after an error) leaves its stream incomplete.
  void finish();

 protected:
  TraceWriter(std::ostream& out, TraceShape shape, std::uint64_t tokens, bool weights);
  // Appends one token's records to buffer_ (checked by write()); `weights` is empty or complete.
  virtual void record(std::uint32_t seq, std::uint32_t index, const std::uint16_t* experts,
                      const float* weights) = 0;

  const TraceShape shape_;
  const bool weights_;     // announced: records carry weights
  std::string buffer_;     // formatted, not yet written

 private:
  std::ostream& out_;
  std::uint64_t announced_, written_ = 0;
};

// The canonical CSV, header `seq,token,layer,experts,weights` (the CSV needs neither the count nor
// the flag, but checks them like the binary form, so that both forms take the same tokens). Weights
// are written in the shortest form that reads back to the same float, so CSV -> trace -> CSV is
// byte-identical; a row without weights has an empty weights field.
std::unique_ptr<TraceWriter> csv_writer(std::ostream& out, TraceShape shape, std::uint64_t tokens,
                                        bool weights);
void write_csv(const RoutingTrace& trace, std::ostream& out);

// ---- Trace files in either form (traces/binary.cpp) ----
// The binary form (extension .rmtrace) holds the same tokens and weights as the CSV, with the
// shape in its header; the simulator reads it much faster than the CSV.

// True when the file starts with the binary form's magic.
bool is_binary_trace(const std::filesystem::path& path);
// Opens a trace in either form (recognized by content), validated against the shape.
std::unique_ptr<TraceSource> open_trace(const std::filesystem::path& path, TraceShape shape);
// The shape of a trace file: a binary file's header; for a CSV, inferred by one pass (layers: the
// largest layer + 1, top_k: experts per row, experts: the largest id + 1).
TraceShape probe_shape(const std::filesystem::path& path);
// The binary form; a token without weights in a trace with weights gets NaN rows.
std::unique_ptr<TraceWriter> binary_writer(std::ostream& out, TraceShape shape, std::uint64_t tokens,
                                           bool weights);
void write_binary(const RoutingTrace& trace, std::ostream& out);
// Writes `trace` to `path`, binary if the name ends in .rmtrace, else CSV, through a temporary file
// renamed at the end: a failed write leaves nothing at `path`.
void save_trace(const std::filesystem::path& path, const RoutingTrace& trace);
// The same, streamed: the `tokens` tokens of `source` (with weights or not, as `weights` says) go
// to the file as they come, so memory does not grow with the trace. A source that ends early or
// has more tokens leaves nothing at `path` either (std::logic_error).
void save_trace(const std::filesystem::path& path, TraceSource& source, TraceShape shape,
                std::uint64_t tokens, bool weights);

}  // namespace rmai::traces
