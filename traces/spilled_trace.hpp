#pragma once
// A trace laid out in the order the nodes replay it (cache/replay.hpp, "The node's stream": each
// sequence's tokens together, the sequences in order of their first token), its records in an
// unnamed temporary file and read back a window at a time. A run then holds the table of the
// trace's sequences and each node's windows, not the trace: its memory is flat in trace length,
// the trace costing disk (its records: 12 bytes and the token's expert ids, 2 bytes each). The file
// has no name (O_TMPFILE in $TMPDIR, else /tmp), so that nothing outlives the process, however it
// ends (kill -9 included); on a file system without O_TMPFILE it is unlinked right after it is
// made, so only a kill between the two leaves it.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "posix/fd.hpp"
#include "traces/trace.hpp"

namespace rmai::traces {

// Stream positions [first(), first() + size()) of a SpilledTrace, as read: each token's index in the
// trace (what switch records name), its sequence, its phase and its routing.
class TokenWindow {
 public:
  std::uint64_t first() const { return first_; }
  std::uint64_t size() const { return size_; }
  bool holds(std::uint64_t pos) const { return pos >= first_ && pos < first_ + size_; }
  std::uint32_t trace_index(std::uint64_t pos) const { return word(pos, 0); }
  std::uint32_t seq(std::uint64_t pos) const { return word(pos, 1); }
  Phase phase(std::uint64_t pos) const { return static_cast<Phase>(word(pos, 2)); }
  // All layers of the token at `pos`, laid out as in Token::experts.
  std::span<const std::uint16_t> experts(std::uint64_t pos) const {
    return {record(pos) + kHeader, per_token_};
  }

 private:
  friend class SpilledTrace;
  // A record: trace index, sequence and phase as 32-bit words (two 16-bit halves each), then the
  // expert ids.
  static constexpr std::size_t kHeader = 6;
  const std::uint16_t* record(std::uint64_t pos) const { return data_.data() + (pos - first_) * (kHeader + per_token_); }
  std::uint32_t word(std::uint64_t pos, std::size_t i) const {
    const std::uint16_t* r = record(pos);
    return std::uint32_t{r[2 * i]} | std::uint32_t{r[2 * i + 1]} << 16;
  }
  std::uint64_t first_ = 0, size_ = 0;
  std::size_t per_token_ = 0;
  std::vector<std::uint16_t> data_;
};

class SpilledTrace {
 public:
  // One sequence: the stream positions of its tokens, the first `prefill` of them its prompt.
  struct Sequence {
    std::uint64_t start = 0, tokens = 0, prefill = 0;
  };

  // The tokens of open()'s source, which is read to its end twice (open() is called twice and must
  // give the same tokens: a file, a seeded generator): once to count each sequence's tokens, once to
  // write each token to its place (one write per run of consecutive places: per token for
  // interleaved sequences). Memory: a few words per sequence. Throws std::invalid_argument when a
  // sequence's prompt tokens do not all come before its decode tokens or an expert id is out of
  // the shape, std::runtime_error when the second reading differs from the first, and
  // std::system_error naming the temporary directory when the file cannot be written (a full disk).
  static SpilledTrace spill(const std::function<std::unique_ptr<TraceSource>()>& open, TraceShape shape);
  static SpilledTrace spill(const RoutingTrace& trace);

  const TraceShape& shape() const { return shape_; }
  std::uint64_t tokens() const { return tokens_; }
  // The sequences in stream order.
  const std::vector<Sequence>& sequences() const { return sequences_; }
  // The sequence holding stream position `pos` (< tokens()).
  const Sequence& sequence_at(std::uint64_t pos) const;
  // Reads stream positions [from, from + count) into `window`; safe from several threads at once.
  void read(std::uint64_t from, std::uint64_t count, TokenWindow& window) const;
  // What a token takes in the file and in a window.
  std::size_t record_bytes() const;

 private:
  SpilledTrace(TraceShape shape, posix::Fd fd) : shape_(shape), file_(std::move(fd)) {}

  TraceShape shape_;
  posix::Fd file_;
  std::uint64_t tokens_ = 0;
  std::vector<Sequence> sequences_;
};

}  // namespace rmai::traces
