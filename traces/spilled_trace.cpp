#include "traces/spilled_trace.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "posix/errors.hpp"

namespace rmai::traces {
namespace {

std::string temporary_directory() {
  const char* dir = std::getenv("TMPDIR");
  return dir && *dir ? dir : "/tmp";
}

// An unnamed file in `dir`: O_TMPFILE, or, on a file system without it, a file unlinked as soon as
// it is made.
posix::Fd unnamed_file(const std::string& dir) {
  posix::Fd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (fd.get() >= 0) return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR) posix::throw_errno("a temporary file for the trace in " + dir);
  std::string name = dir + "/rmai-trace-XXXXXX";
  fd = posix::Fd(::mkostemp(name.data(), O_CLOEXEC));
  if (fd.get() < 0) posix::throw_errno("a temporary file for the trace in " + dir);
  ::unlink(name.c_str());
  return fd;
}

// The tokens of a trace in memory, as a source.
class TraceInMemory final : public TraceSource {
 public:
  explicit TraceInMemory(const RoutingTrace& trace) : trace_(trace) {}
  bool next(Token& token) override {
    if (next_ == trace_.tokens()) return false;
    token.seq = trace_.seq(next_);
    token.index = trace_.index(next_);
    token.phase = trace_.phase(next_);
    const auto experts = trace_.experts(next_);
    token.experts.assign(experts.begin(), experts.end());
    token.weights.clear();  // the replay does not read them
    ++next_;
    return true;
  }

 private:
  const RoutingTrace& trace_;
  std::size_t next_ = 0;
};

// Writes records to their stream positions, runs of consecutive positions in one pwrite.
class RecordWriter {
 public:
  RecordWriter(int fd, std::size_t record_bytes, std::string what)
      : fd_(fd), record_bytes_(record_bytes), what_(std::move(what)) {}
  void write(std::uint64_t pos, std::uint32_t trace_index, const Token& token) {
    if (pos != first_ + pending_ || buffer_.size() * sizeof(std::uint16_t) >= kFlushBytes) flush();
    if (pending_ == 0) first_ = pos;
    const std::uint32_t header[3] = {trace_index, token.seq, static_cast<std::uint32_t>(token.phase)};
    for (const auto word : header) {
      buffer_.push_back(static_cast<std::uint16_t>(word & 0xffff));
      buffer_.push_back(static_cast<std::uint16_t>(word >> 16));
    }
    buffer_.insert(buffer_.end(), token.experts.begin(), token.experts.end());
    ++pending_;
  }
  void flush() {
    const auto* bytes = reinterpret_cast<const char*>(buffer_.data());
    std::size_t left = buffer_.size() * sizeof(std::uint16_t);
    auto offset = static_cast<off_t>(first_ * record_bytes_);
    while (left > 0) {
      const ssize_t n = ::pwrite(fd_, bytes, left, offset);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) posix::throw_errno(what_);
      bytes += n, left -= std::size_t(n), offset += n;
    }
    buffer_.clear();
    pending_ = 0;
  }

 private:
  static constexpr std::size_t kFlushBytes = std::size_t(1) << 20;
  int fd_;
  std::size_t record_bytes_;
  std::string what_;
  std::vector<std::uint16_t> buffer_;
  std::uint64_t first_ = 0, pending_ = 0;
};

}  // namespace

std::size_t SpilledTrace::record_bytes() const {
  return (TokenWindow::kHeader + std::size_t{shape_.layers} * shape_.top_k) * sizeof(std::uint16_t);
}

SpilledTrace SpilledTrace::spill(const std::function<std::unique_ptr<TraceSource>()>& open, TraceShape shape) {
  validate(shape);
  const std::string dir = temporary_directory();
  SpilledTrace trace(shape, unnamed_file(dir));
  // First reading: each sequence's tokens and prompt, sequences numbered by their first token.
  std::unordered_map<std::uint32_t, std::size_t> rank_of;
  Token token;
  {
    const auto source = open();
    while (source->next(token)) {
      const auto [at, fresh] = rank_of.try_emplace(token.seq, trace.sequences_.size());
      if (fresh) trace.sequences_.emplace_back();
      auto& s = trace.sequences_[at->second];
      if (token.phase == Phase::Prefill) {
        if (s.prefill != s.tokens)
          throw std::invalid_argument("trace: sequence " + std::to_string(token.seq) +
                                      " has a prompt token after its decode tokens");
        ++s.prefill;
      }
      ++s.tokens;
      if (++trace.tokens_ > std::numeric_limits<std::uint32_t>::max())
        throw std::invalid_argument("trace: more than 2^32 - 1 tokens");
    }
  }
  for (std::size_t r = 1; r < trace.sequences_.size(); ++r)
    trace.sequences_[r].start = trace.sequences_[r - 1].start + trace.sequences_[r - 1].tokens;
  // Second reading: each token to its sequence's next place.
  std::vector<std::uint64_t> placed(trace.sequences_.size(), 0);
  RecordWriter writer(trace.file_.get(), trace.record_bytes(), "writing the trace's temporary file in " + dir);
  const auto changed = [] { return std::runtime_error("the trace changed between its two readings"); };
  const auto source = open();
  std::uint64_t index = 0;
  for (; source->next(token); ++index) {
    const auto at = rank_of.find(token.seq);
    if (at == rank_of.end() || index == trace.tokens_ ||
        token.experts.size() != std::size_t{shape.layers} * shape.top_k)
      throw changed();
    const auto& s = trace.sequences_[at->second];
    auto& n = placed[at->second];
    if (n == s.tokens || (token.phase == Phase::Prefill) != (n < s.prefill)) throw changed();
    for (const auto expert : token.experts)  // the replay indexes by them
      if (expert >= shape.experts) throw std::invalid_argument("trace: expert " + std::to_string(expert) + " out of range");
    writer.write(s.start + n++, static_cast<std::uint32_t>(index), token);
  }
  if (index != trace.tokens_) throw changed();
  writer.flush();
  return trace;
}

SpilledTrace SpilledTrace::spill(const RoutingTrace& trace) {
  return spill([&trace] { return std::make_unique<TraceInMemory>(trace); }, trace.shape());
}

const SpilledTrace::Sequence& SpilledTrace::sequence_at(std::uint64_t pos) const {
  if (pos >= tokens_) throw std::out_of_range("trace: stream position past the end");
  const auto after = std::upper_bound(sequences_.begin(), sequences_.end(), pos,
                                      [](std::uint64_t p, const Sequence& s) { return p < s.start; });
  return *(after - 1);
}

void SpilledTrace::read(std::uint64_t from, std::uint64_t count, TokenWindow& window) const {
  if (from + count > tokens_) throw std::out_of_range("trace: window past the end");
  window.first_ = from;
  window.size_ = count;
  window.per_token_ = std::size_t{shape_.layers} * shape_.top_k;
  window.data_.resize(count * record_bytes() / sizeof(std::uint16_t));
  auto* bytes = reinterpret_cast<char*>(window.data_.data());
  std::size_t left = count * record_bytes();
  auto offset = static_cast<off_t>(from * record_bytes());
  while (left > 0) {
    const ssize_t n = ::pread(file_.get(), bytes, left, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) posix::throw_errno("reading the trace's temporary file");
    if (n == 0) throw std::runtime_error("reading the trace's temporary file: it ended early");
    bytes += n, left -= std::size_t(n), offset += n;
  }
}

}  // namespace rmai::traces
