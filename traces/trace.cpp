#include "traces/trace.hpp"

#include <algorithm>
#include <cmath>
#include <ostream>
#include <stdexcept>
#include <string>

namespace rmai::traces {

void validate(const TraceShape& shape) {
  if (shape.layers == 0 || shape.top_k == 0 || shape.experts == 0)
    throw std::invalid_argument("trace shape needs at least one layer, one expert and top_k >= 1");
  if (shape.top_k > shape.experts)
    throw std::invalid_argument("trace shape: top_k " + std::to_string(shape.top_k) +
                                " exceeds the " + std::to_string(shape.experts) + " experts");
  if (shape.experts > kMaxExperts)
    throw std::invalid_argument("trace shape: more than 65536 experts per layer");
  if (shape.layers > kMaxLayers)
    throw std::invalid_argument("trace shape: " + std::to_string(shape.layers) + " layers, more than " +
                                std::to_string(kMaxLayers));
  if (shape.top_k > kMaxTopK)
    throw std::invalid_argument("trace shape: top_k " + std::to_string(shape.top_k) + ", more than " +
                                std::to_string(kMaxTopK));
}

std::string_view phase_name(Phase phase) { return phase == Phase::Prefill ? "prefill" : "decode"; }

std::optional<Phase> phase_named(std::string_view name) {
  if (name == "decode") return Phase::Decode;
  if (name == "prefill") return Phase::Prefill;
  return std::nullopt;
}

RoutingTrace::RoutingTrace(TraceShape shape) : shape_(shape) { validate(shape); }

void RoutingTrace::append(const Token& token) {
  if (token.experts.size() != std::size_t{shape_.layers} * shape_.top_k)
    throw std::invalid_argument("token has " + std::to_string(token.experts.size()) +
                                " expert ids, expected layers * top_k = " +
                                std::to_string(std::size_t{shape_.layers} * shape_.top_k));
  for (const auto expert : token.experts)
    if (expert >= shape_.experts)
      throw std::invalid_argument("expert " + std::to_string(expert) + " out of range");
  if (!token.weights.empty() && token.weights.size() != token.experts.size())
    throw std::invalid_argument("token has " + std::to_string(token.weights.size()) +
                                " weights for " + std::to_string(token.experts.size()) + " experts");
  if (!token.weights.empty() && weights_.empty())  // the first weights: earlier tokens had none
    weights_.assign(experts_.size(), kNoWeight);
  if (token.phase != Phase::Decode || !phases_.empty()) {
    // The first prefill token gives the earlier ones (decode) their phases; it may be the first
    // token of all, so the test cannot be on phases_ being empty after that.
    phases_.resize(seqs_.size(), Phase::Decode);
    phases_.push_back(token.phase);
  }
  seqs_.push_back(token.seq);
  indices_.push_back(token.index);
  experts_.insert(experts_.end(), token.experts.begin(), token.experts.end());
  if (token.weights.empty() && !weights_.empty())
    weights_.insert(weights_.end(), token.experts.size(), kNoWeight);
  else
    weights_.insert(weights_.end(), token.weights.begin(), token.weights.end());
}

bool operator==(const RoutingTrace& a, const RoutingTrace& b) {
  const auto same_weight = [](float x, float y) { return x == y || (std::isnan(x) && std::isnan(y)); };
  const auto same_phases = [&] {
    for (std::size_t t = 0; t < a.tokens(); ++t)
      if (a.phase(t) != b.phase(t)) return false;
    return true;
  };
  return a.shape_ == b.shape_ && a.seqs_ == b.seqs_ && a.indices_ == b.indices_ && same_phases() &&
         a.experts_ == b.experts_ &&
         std::equal(a.weights_.begin(), a.weights_.end(), b.weights_.begin(), b.weights_.end(), same_weight);
}

// Large enough that the stream sees few, large writes; a token's records may overshoot it.
constexpr std::size_t kBlock = std::size_t{1} << 20;

TraceWriter::TraceWriter(std::ostream& out, TraceShape shape, std::uint64_t tokens, bool weights,
                         bool phases)
    : shape_(shape), weights_(weights), phases_(phases), out_(out), announced_(tokens) {
  validate(shape);
  buffer_.reserve(kBlock);
}

void TraceWriter::write(std::uint32_t seq, std::uint32_t index, std::span<const std::uint16_t> experts,
                        std::span<const float> weights, Phase phase) {
  const std::size_t n = std::size_t{shape_.layers} * shape_.top_k;
  if (experts.size() != n)
    throw std::logic_error("trace writer: a token of " + std::to_string(experts.size()) +
                           " expert ids, expected layers * top_k = " + std::to_string(n));
  if (!weights.empty() && (!weights_ || weights.size() != n))
    throw std::logic_error(weights_ ? "trace writer: a token with " + std::to_string(weights.size()) +
                                          " weights for " + std::to_string(n) + " experts"
                                    : "trace writer: a token with weights, announced without");
  if (phase != Phase::Decode && !phases_)
    throw std::logic_error("trace writer: a prefill token, phases announced without");
  if (written_ == announced_)
    throw std::logic_error("trace writer: more tokens than the " + std::to_string(announced_) + " announced");
  record(seq, index, experts.data(), weights.empty() ? nullptr : weights.data(), phase);
  ++written_;
  if (buffer_.size() >= kBlock) {
    out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
    buffer_.clear();
  }
}

void TraceWriter::write(const RoutingTrace& trace) {
  for (std::size_t token = 0; token < trace.tokens(); ++token)
    write(trace.seq(token), trace.index(token), trace.experts(token), trace.weights(token),
          trace.phase(token));
}

void TraceWriter::finish() {
  // The binary header already announced the count: a file with fewer records would be refused.
  if (written_ != announced_)
    throw std::logic_error("trace writer: " + std::to_string(written_) + " tokens written, " +
                           std::to_string(announced_) + " announced");
  out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  buffer_.clear();
}

RoutingTrace RoutingTrace::load(TraceSource& source, TraceShape shape) {
  RoutingTrace trace(shape);
  Token token{};
  while (source.next(token)) trace.append(token);
  return trace;
}

}  // namespace rmai::traces
