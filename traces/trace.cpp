#include "trace.hpp"

#include <stdexcept>
#include <string>

namespace rmai::traces {

void validate(const TraceShape& shape) {
  if (shape.layers == 0 || shape.top_k == 0 || shape.experts == 0)
    throw std::invalid_argument("trace shape needs at least one layer, one expert and top_k >= 1");
  if (shape.top_k > shape.experts)
    throw std::invalid_argument("trace shape: top_k " + std::to_string(shape.top_k) +
                                " exceeds the " + std::to_string(shape.experts) + " experts");
  if (shape.experts > 65536)
    throw std::invalid_argument("trace shape: more than 65536 experts per layer");
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
  seqs_.push_back(token.seq);
  indices_.push_back(token.index);
  experts_.insert(experts_.end(), token.experts.begin(), token.experts.end());
}

RoutingTrace RoutingTrace::load(TraceSource& source, TraceShape shape) {
  RoutingTrace trace(shape);
  Token token{};
  while (source.next(token)) trace.append(token);
  return trace;
}

}  // namespace rmai::traces
