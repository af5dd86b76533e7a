#pragma once
// What the streaming trace readers share (traces/csv.cpp, traces/binary.cpp): the CSV's headers,
// and the per-sequence order rule every form obeys.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "traces/trace.hpp"

namespace rmai::traces {

// The canonical CSV's headers: weights and phase columns are optional, a phase column only after
// the weights column (docs/interfaces.md, "Canonical CSV").
inline constexpr std::string_view kCsvHeader = "seq,token,layer,experts,weights";
inline constexpr std::string_view kCsvHeaderNoWeights = "seq,token,layer,experts";
inline constexpr std::string_view kCsvHeaderPhases = "seq,token,layer,experts,weights,phase";
inline constexpr const char* kCsvHeadersAccepted =
    "'seq,token,layer,experts,weights', 'seq,token,layer,experts' or "
    "'seq,token,layer,experts,weights,phase'";

// The columns a header line announces (4, 5 or 6), 0 when it is none of the headers. A UTF-8
// byte-order mark (from editors) is skipped.
inline std::size_t csv_columns(std::string_view header) {
  if (header.starts_with("\xEF\xBB\xBF")) header.remove_prefix(3);
  if (header == kCsvHeader) return 5;
  if (header == kCsvHeaderNoWeights) return 4;
  if (header == kCsvHeaderPhases) return 6;
  return 0;
}

// The order of a sequence's tokens, whatever the form: indices increase, and the prompt (its
// prefill tokens) comes before its first decode token. Sequences may interleave.
class SequenceOrder {
 public:
  // Takes the next token; returns what is wrong with it coming here, or "" when it may. `hint`
  // ends the message of indices out of order.
  std::string next(std::uint32_t seq, std::uint32_t index, Phase phase, std::string_view hint = {}) {
    if (!last_ || seq != last_seq_) {  // map lookups only when the sequence changes
      const auto [entry, first_of_seq] = sequences_.try_emplace(seq, Last{index, phase});
      last_seq_ = seq;
      last_ = &entry->second;  // stays valid: unordered_map never moves its elements
      if (first_of_seq) return {};
    }
    if (index <= last_->index)
      return "token " + std::to_string(index) + " of sequence " + std::to_string(seq) +
             " comes after token " + std::to_string(last_->index) +
             ": tokens of a sequence must be in increasing order" + std::string(hint);
    if (phase == Phase::Prefill && last_->phase == Phase::Decode)
      return "prefill token " + std::to_string(index) + " of sequence " + std::to_string(seq) +
             " comes after its decode token " + std::to_string(last_->index) +
             ": a sequence's prefill tokens (its prompt) come before its first decode token";
    *last_ = {index, phase};
    return {};
  }

 private:
  struct Last {
    std::uint32_t index;
    Phase phase;
  };
  std::unordered_map<std::uint32_t, Last> sequences_;  // per sequence, its last token
  std::uint32_t last_seq_ = 0;
  Last* last_ = nullptr;  // sequences_[last_seq_]
};

}  // namespace rmai::traces
