// The canonical CSV trace: a streaming, validating reader and the writer.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ostream>
#include <string>
#include <string_view>

#include "config/errors.hpp"
#include "traces/line_reader.hpp"
#include "traces/reading.hpp"
#include "traces/trace.hpp"

namespace rmai::traces {
namespace {

// The header of a file with `columns` columns (4, 5 or 6).
std::string_view header_of(std::size_t columns) {
  return columns == 4 ? kCsvHeaderNoWeights : columns == 5 ? kCsvHeader : kCsvHeaderPhases;
}

std::string quoted(std::string_view text) {
  constexpr std::size_t kMax = 60;  // a binary file must not flood the message
  if (text.size() > kMax) return "'" + std::string(text.substr(0, kMax)) + "...'";
  return "'" + std::string(text) + "'";
}

// Splits at `separator` into at most `max` fields; returns how many fields there are in all.
std::size_t split(std::string_view text, char separator, std::string_view* fields,
                  std::size_t max) {
  std::size_t count = 0;
  for (;;) {
    const std::size_t end = text.find(separator);
    if (count < max) fields[count] = text.substr(0, end);
    ++count;
    if (end == std::string_view::npos) return count;
    text.remove_prefix(end + 1);
  }
}

bool parse_integer(std::string_view text, std::uint64_t& value) {
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && ec == std::errc() && ptr == text.data() + text.size();
}

class CsvSource final : public TraceSource {
 public:
  CsvSource(const std::filesystem::path& path, TraceShape shape)
      : name_(path.string()), shape_(shape), reader_(path) {
    current_.experts.resize(std::size_t{shape.layers} * shape.top_k);
    row_.reserve(shape.top_k);
    std::string_view header;
    if (!reader_.next(header))
      throw InputError(name_ + ":1", "empty file: expected the header line '" +
                                         std::string(kCsvHeader) + "' then one row per token-layer");
    line_ = 1;
    columns_ = csv_columns(header);
    if (columns_ == 0)
      fail("header is " + quoted(header) + " but must be exactly " + kCsvHeadersAccepted);
  }

  bool next(Token& token) override {
    std::string_view line;
    while (reader_.next(line)) {
      ++line_;
      if (line.empty()) continue;  // blank lines (e.g. at the end of a file) carry nothing
      if (read_row(line)) {
        std::swap(token.experts, current_.experts);
        std::swap(token.weights, current_.weights);
        token.seq = current_.seq;
        token.index = current_.index;
        token.phase = current_.phase;
        current_.experts.resize(std::size_t{shape_.layers} * shape_.top_k);
        current_.weights.clear();
        return true;
      }
    }
    if (next_layer_ > 0)
      fail("the file ends inside " + token_name() + ", which has " + layers_read() +
           " but the model has " + std::to_string(shape_.layers) + " MoE layers (truncated file?)");
    return false;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(name_ + ":" + std::to_string(line_), what);
  }

  std::string token_name() const {
    return "token " + std::to_string(current_.index) + " of sequence " +
           std::to_string(current_.seq);
  }
  std::string layers_read() const {
    return next_layer_ == 1 ? "layer 0 only" : "layers 0-" + std::to_string(next_layer_ - 1);
  }
  std::string layer_order() const {
    return "the rows of a token must be layers 0.." + std::to_string(shape_.layers - 1) +
           " in order";
  }

  std::uint32_t integer(std::string_view field, const char* what) const {
    std::uint64_t value = 0;
    if (!parse_integer(field, value) || value > UINT32_MAX)
      fail(std::string(what) + " " + quoted(field) + " is not an integer in 0.." +
           std::to_string(UINT32_MAX));
    return static_cast<std::uint32_t>(value);
  }

  // Parses the experts field into row_.
  void parse_experts(std::string_view field) {
    row_.clear();
    std::size_t count = 0;
    if (!field.empty())
      for (;;) {  // an empty field is zero experts
        const std::size_t end = field.find(';');
        const std::string_view id = field.substr(0, end);
        std::uint64_t expert = 0;
        if (!parse_integer(id, expert))
          fail("expert " + quoted(id) +
               " is not a non-negative integer (experts are ';'-separated)");
        if (expert >= shape_.experts)
          fail("expert " + std::to_string(expert) + " out of range: the model has " +
               std::to_string(shape_.experts) + " experts per layer");
        if (std::find(row_.begin(), row_.end(), expert) != row_.end())
          fail("expert " + std::to_string(expert) + " appears twice in the row: a token chooses " +
               std::to_string(shape_.top_k) + " distinct experts per layer");
        if (row_.size() < shape_.top_k) row_.push_back(static_cast<std::uint16_t>(expert));
        ++count;
        if (end == std::string_view::npos) break;
        field.remove_prefix(end + 1);
      }
    if (count != shape_.top_k)
      fail("row has " + std::to_string(count) + " experts but the model routes each token to " +
           std::to_string(shape_.top_k) + " (top_k) per layer");
  }

  // Parses the weights field of `layer` into current_.weights (NaN stays where a row has none).
  void parse_weights(std::string_view field, std::uint32_t layer) {
    if (field.empty()) return;  // weights are optional per row
    const std::size_t count = std::count(field.begin(), field.end(), ';') + 1;
    if (count != shape_.top_k)
      fail("row has " + std::to_string(count) + " weights for " + std::to_string(shape_.top_k) +
           " experts: expected one weight per expert or none");
    if (current_.weights.empty()) current_.weights.assign(current_.experts.size(), kNoWeight);
    float* weights = current_.weights.data() + std::size_t{layer} * shape_.top_k;
    for (std::size_t k = 0;; ++k) {
      const std::size_t end = field.find(';');
      const std::string_view text = field.substr(0, end);
      float weight = 0;
      const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), weight);
      if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() ||
          !std::isfinite(weight))
        fail("weight " + quoted(text) + " is not a number (weights are ';'-separated decimals)");
      weights[k] = weight;
      if (end == std::string_view::npos) return;
      field.remove_prefix(end + 1);
    }
  }

  // The phase field: empty is decode, like a file without the column.
  Phase parse_phase(std::string_view field) const {
    if (field.empty()) return Phase::Decode;
    const auto phase = phase_named(field);
    if (!phase) fail("phase " + quoted(field) + " is neither 'prefill' nor 'decode' (the phase column)");
    return *phase;
  }

  // Validates one row and stores it in current_; true when it completes the token.
  bool read_row(std::string_view line) {
    std::string_view fields[6];
    const std::size_t count = split(line, ',', fields, 6);
    if (count != columns_)
      fail("row has " + std::to_string(count) + " fields but expected " + std::to_string(columns_) +
           " (" + std::string(header_of(columns_)) + ")");
    const std::uint32_t seq = integer(fields[0], "seq");
    const std::uint32_t index = integer(fields[1], "token");
    const std::uint32_t layer = integer(fields[2], "layer");
    if (layer >= shape_.layers)
      fail("layer " + std::to_string(layer) + " out of range: the model has " +
           std::to_string(shape_.layers) + " MoE layers (0.." + std::to_string(shape_.layers - 1) +
           ")");
    parse_experts(fields[3]);
    if (columns_ >= 5) parse_weights(fields[4], layer);
    const Phase phase = columns_ == 6 ? parse_phase(fields[5]) : Phase::Decode;

    if (next_layer_ > 0) {  // inside a token
      if (seq != current_.seq || index != current_.index)
        fail(token_name() + " has " + layers_read() + " but the model has " +
             std::to_string(shape_.layers) + " MoE layers (its rows end before this line)");
      if (layer != next_layer_)
        fail(token_name() + ": layer " + std::to_string(layer) + " follows layer " +
             std::to_string(next_layer_ - 1) + " but " + layer_order());
      if (phase != current_.phase)
        fail(token_name() + " is " + std::string(phase_name(phase)) + " at layer " +
             std::to_string(layer) + " but " + std::string(phase_name(current_.phase)) +
             " at layer 0: all rows of a token have one phase");
    } else {  // a new token
      // Rows of a token apart look like its index repeating: the hint says why it is wrong.
      if (const std::string wrong = order_.next(seq, index, phase, ", each token's rows together");
          !wrong.empty())
        fail(wrong);
      current_.seq = seq;
      current_.index = index;
      current_.phase = phase;
      if (layer != 0)
        fail(token_name() + " starts at layer " + std::to_string(layer) + " but " + layer_order());
    }
    std::copy(row_.begin(), row_.end(),
              current_.experts.begin() + std::size_t{layer} * shape_.top_k);
    if (++next_layer_ < shape_.layers) return false;
    next_layer_ = 0;
    return true;
  }

  std::string name_;
  TraceShape shape_;
  LineReader reader_;
  std::size_t line_ = 0;          // 1-based number of the last line read
  std::size_t columns_ = 5;       // 4 without the weights column, 6 with the phase column
  Token current_{};               // the token being read
  std::uint32_t next_layer_ = 0;  // layers of current_ read so far; 0 between tokens
  SequenceOrder order_;
  std::vector<std::uint16_t> row_;  // experts of the row being read
};

}  // namespace

std::unique_ptr<TraceSource> open_csv(const std::filesystem::path& path, TraceShape shape) {
  validate(shape);
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw InputError(path.string(), "is a directory, expected a CSV trace file");
  return std::make_unique<CsvSource>(path, shape);
}

namespace {

class CsvWriter final : public TraceWriter {
 public:
  CsvWriter(std::ostream& out, TraceShape shape, std::uint64_t tokens, bool weights, bool phases)
      : TraceWriter(out, shape, tokens, weights, phases) {
    buffer_.append(phases ? kCsvHeaderPhases : kCsvHeader).push_back('\n');
  }

 private:
  // Formatted with to_chars: streams per field are slow.
  void put(std::uint32_t value, char after) {
    char digits[16];
    const auto result = std::to_chars(digits, digits + sizeof digits, value);
    buffer_.append(digits, result.ptr);
    buffer_.push_back(after);
  }

  void record(std::uint32_t seq, std::uint32_t index, const std::uint16_t* experts,
              const float* weights, Phase phase) override {
    const std::size_t k = shape_.top_k;
    for (std::uint32_t layer = 0; layer < shape_.layers; ++layer, experts += k) {
      put(seq, ',');
      put(index, ',');
      put(layer, ',');
      for (std::size_t i = 0; i < k; ++i) put(experts[i], i + 1 < k ? ';' : ',');
      if (weights && !std::isnan(weights[0]))  // a row has all its weights or none (NaN)
        for (std::size_t i = 0; i < k; ++i) {
          if (i > 0) buffer_.push_back(';');
          char digits[32];  // the longest float in shortest form is 15 characters
          const auto result = std::to_chars(digits, digits + sizeof digits, weights[i]);
          buffer_.append(digits, result.ptr);
        }
      if (weights) weights += k;
      if (phases_) {
        buffer_.push_back(',');
        buffer_.append(phase_name(phase));
      }
      buffer_.push_back('\n');
    }
  }
};

}  // namespace

std::unique_ptr<TraceWriter> csv_writer(std::ostream& out, TraceShape shape, std::uint64_t tokens,
                                        bool weights, bool phases) {
  return std::make_unique<CsvWriter>(out, shape, tokens, weights, phases);
}

void write_csv(const RoutingTrace& trace, std::ostream& out) {
  CsvWriter writer(out, trace.shape(), trace.tokens(), trace.has_weights(), trace.has_phases());
  writer.write(trace);
  writer.finish();
}

}  // namespace rmai::traces
