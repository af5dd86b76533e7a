// Trace files in either form: the compact binary form, recognizing a file's form, inferring its
// shape, and saving a trace without leaving a partial file behind.
//
// Binary trace format, version 1 (extension .rmtrace). Little-endian, no padding; all fields are
// read with memcpy, so records need no alignment.
//
//   offset size  header
//   0      8     magic "RMAITRC\0"
//   8      4     u32 version, 1
//   12     4     u32 layers    MoE layers
//   16     4     u32 top_k     experts chosen per token-layer
//   20     4     u32 experts   experts per layer (ids are below this)
//   24     4     u32 flags     bit 0: the records carry weights; bit 1: the records carry phases;
//                              other bits are 0
//   28     8     u64 tokens    number of token records that follow
//   36           token records, each R = 8 + 2n (+ 4n with weights) (+ 1 with phases) bytes,
//                n = layers * top_k:
//                  u32 seq, u32 index (position in its sequence),
//                  u16 experts[n]   experts[layer * top_k + k], router rank order
//                  f32 weights[n]   only with flag bit 0; a row (one layer) holds top_k finite
//                                   weights, or top_k NaN when that CSV row had no weights
//                  u8 phase         only with flag bit 1: 0 decode, 1 prefill
//
// Phases came after version 1's first files: a flag, not a new version, so that the files without
// them (all decode) stay byte for byte what they were, and a build before phases refuses a file
// with them as having an unknown flag rather than misreading it.
//
// The file ends right after the last record. Records obey the CSV's rules (traces/csv.cpp):
// expert ids below `experts` and distinct within a row; tokens of a sequence in increasing index
// order, sequences possibly interleaved, a sequence's prefill tokens before its first decode one.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "config/errors.hpp"
#include "posix/files.hpp"
#include "traces/line_reader.hpp"
#include "traces/reading.hpp"
#include "traces/trace.hpp"

namespace rmai::traces {
namespace fs = std::filesystem;

// The records are the in-memory layout copied as they are; a big-endian host would need swaps.
static_assert(std::endian::native == std::endian::little, "the binary trace form is little-endian");

namespace {

constexpr char kMagic[8] = {'R', 'M', 'A', 'I', 'T', 'R', 'C', '\0'};
constexpr std::uint32_t kVersion = 1;
constexpr std::uint32_t kHasWeights = 1;
constexpr std::uint32_t kHasPhases = 2;
constexpr std::size_t kHeaderSize = 36;
constexpr std::size_t kBlock = std::size_t{1} << 20;  // read through ~1 MiB

struct Closer {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using File = std::unique_ptr<std::FILE, Closer>;

File open_file(const fs::path& path) {
  std::error_code error;
  if (fs::is_directory(path, error))
    throw InputError(path.string(), "is a directory, expected a trace file");
  File file(std::fopen(path.c_str(), "rb"));
  if (!file) throw InputError(path.string(), std::string("cannot open: ") + std::strerror(errno));
  return file;
}

// Reads up to `size` bytes; fewer only at the end of the file.
std::size_t read_bytes(std::FILE* file, void* data, std::size_t size, const std::string& name) {
  const std::size_t got = std::fread(data, 1, size, file);
  if (got < size && std::ferror(file))
    throw InputError(name, std::string("read error: ") + std::strerror(errno));
  return got;
}

// The first bytes of a file (fewer if it is shorter or cannot be read).
std::string_view head(const fs::path& path, char (&bytes)[8]) {
  std::error_code error;
  if (fs::is_directory(path, error)) return {};
  File file(std::fopen(path.c_str(), "rb"));
  if (!file) return {};
  return {bytes, std::fread(bytes, 1, sizeof bytes, file.get())};
}

// Whether the binary reader should take the file: its magic, or a damaged one. A CSV is text
// starting with its header, so a NUL byte or "RMAI" at the start means a damaged binary file,
// better reported as a bad magic than as a CSV header that is not one.
bool looks_binary(const fs::path& path) {
  char bytes[8];
  const std::string_view start = head(path, bytes);
  return start.starts_with("RMAI") || start.find('\0') != std::string_view::npos;
}

std::string describe(const TraceShape& shape) {
  return std::to_string(shape.layers) + " layers, top-" + std::to_string(shape.top_k) + " of " +
         std::to_string(shape.experts) + " experts";
}

std::size_t record_size(const TraceShape& shape, bool weights, bool phases) {
  const std::size_t n = std::size_t{shape.layers} * shape.top_k;
  return 8 + n * sizeof(std::uint16_t) + (weights ? n * sizeof(float) : 0) + (phases ? 1 : 0);
}

struct Header {
  TraceShape shape;
  bool weights;
  bool phases;
  std::uint64_t tokens;
};

Header read_header(std::FILE* file, const std::string& name) {
  char bytes[kHeaderSize];
  const std::size_t got = read_bytes(file, bytes, sizeof bytes, name);
  const auto field = [&](std::size_t offset) {
    std::uint32_t value;
    std::memcpy(&value, bytes + offset, sizeof value);
    return value;
  };
  const std::string where = name + ": header";
  if (got < sizeof kMagic || std::memcmp(bytes, kMagic, sizeof kMagic) != 0)
    throw InputError(where,
                     "bad magic: not a binary trace (expected it to start with \"RMAITRC\\0\")");
  if (got >= 12 && field(8) != kVersion)
    throw InputError(where, "unsupported format version " + std::to_string(field(8)) +
                                " (this build reads version " + std::to_string(kVersion) + ")");
  if (got < kHeaderSize)
    throw InputError(where, "truncated file: the header is " + std::to_string(got) + " of " +
                                std::to_string(kHeaderSize) + " bytes");
  Header header{{field(12), field(16), field(20)},
                (field(24) & kHasWeights) != 0,
                (field(24) & kHasPhases) != 0,
                0};
  if (field(24) & ~(kHasWeights | kHasPhases))
    throw InputError(where, "unknown flags " + std::to_string(field(24)) +
                                " (version 1 knows bits 0 and 1 only)");
  try {
    validate(header.shape);
  } catch (const std::invalid_argument& error) {
    throw InputError(where, error.what());
  }
  std::memcpy(&header.tokens, bytes + 28, sizeof header.tokens);
  // Bounds the token count so that byte offsets below cannot overflow.
  const std::uint64_t record = record_size(header.shape, header.weights, header.phases);
  if (header.tokens > (UINT64_MAX - kHeaderSize) / record)
    throw InputError(where,
                     "token count " + std::to_string(header.tokens) + " is impossibly large");
  // A regular file must hold exactly what the header announces: checked before anything is
  // allocated for it (a pipe is checked record by record as it streams).
  struct stat info {};
  if (::fstat(::fileno(file), &info) == 0 && S_ISREG(info.st_mode)) {
    const std::uint64_t expected = kHeaderSize + header.tokens * record;
    if (std::uint64_t(info.st_size) != expected)
      throw InputError(where, "the header announces " + std::to_string(header.tokens) + " token records of " +
                                  std::to_string(record) + " bytes (" + std::to_string(expected) +
                                  " bytes with the header) but the file has " + std::to_string(info.st_size) +
                                  (std::uint64_t(info.st_size) < expected ? ": truncated file" : ": trailing data"));
  }
  return header;
}

// Streams token records through one block buffer, validating each as the CSV reader does.
class BinarySource final : public TraceSource {
 public:
  BinarySource(const fs::path& path, TraceShape shape)
      : name_(path.string()), file_(open_file(path)), header_(read_header(file_.get(), name_)) {
    if (header_.shape != shape)
      throw InputError(name_ + ": header", "the file holds a trace of " + describe(header_.shape) +
                                               " but " + describe(shape) +
                                               " are expected (convert it with --model NAME)");
    row_ = shape.top_k;
    n_ = std::size_t{shape.layers} * shape.top_k;
    record_ = record_size(shape, header_.weights, header_.phases);
    buffer_.resize(std::max(kBlock / record_, std::size_t{1}) * record_);
  }

  bool next(Token& token) override {
    if (read_ == header_.tokens) {
      if (!at_end_) check_end();
      return false;
    }
    if (end_ - begin_ < record_) refill();
    const char* record = buffer_.data() + begin_;
    std::memcpy(&token.seq, record, 4);
    std::memcpy(&token.index, record + 4, 4);
    token.experts.resize(n_);
    std::memcpy(token.experts.data(), record + 8, n_ * sizeof(std::uint16_t));
    check_experts(token.experts.data());
    if (header_.weights) {
      token.weights.resize(n_);
      std::memcpy(token.weights.data(), record + 8 + n_ * sizeof(std::uint16_t),
                  n_ * sizeof(float));
      if (!check_weights(token.weights.data()))
        token.weights.clear();  // like a CSV token without any
    } else {
      token.weights.clear();
    }
    token.phase = header_.phases ? phase(record[record_ - 1]) : Phase::Decode;
    if (const std::string wrong = order_.next(token.seq, token.index, token.phase); !wrong.empty())
      fail(wrong);
    begin_ += record_;
    ++read_;
    return true;
  }

 private:
  std::uint64_t offset() const { return kHeaderSize + read_ * record_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(
        name_ + ": token record " + std::to_string(read_) + " at byte " + std::to_string(offset()),
        what);
  }

  // Moves the unread bytes to the front and fills the rest of the buffer.
  void refill() {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    end_ += read_bytes(file_.get(), buffer_.data() + end_, buffer_.size() - end_, name_);
    if (end_ < record_)
      fail("truncated file: the header announces " + std::to_string(header_.tokens) +
           " tokens but the file ends " + std::to_string(end_) + " bytes into this record of " +
           std::to_string(record_) + " bytes");
  }

  void check_end() {
    at_end_ = true;
    char extra;
    if (begin_ < end_ || read_bytes(file_.get(), &extra, 1, name_) == 1)
      throw InputError(name_ + ": byte " + std::to_string(offset()),
                       "trailing data after the " + std::to_string(header_.tokens) +
                           " token records the header announces");
  }

  // Ids below `experts` and distinct within each row. Valid tokens (the common case) run through
  // branch-free loops; only a bad one pays for finding what is wrong.
  void check_experts(const std::uint16_t* experts) const {
    bool bad = false;
    for (std::size_t i = 0; i < n_; ++i) bad |= experts[i] >= header_.shape.experts;
    for (std::size_t row = 0; row < n_; row += row_)  // top_k is small: pairs beat a set
      for (std::size_t k = 1; k < row_; ++k)
        for (std::size_t j = 0; j < k; ++j) bad |= experts[row + j] == experts[row + k];
    if (bad) explain_experts(experts);
  }

  [[noreturn]] void explain_experts(const std::uint16_t* experts) const {
    for (std::uint32_t layer = 0;; ++layer, experts += row_)
      for (std::size_t k = 0; k < row_; ++k) {
        const std::string id = std::to_string(experts[k]);
        if (experts[k] >= header_.shape.experts)
          fail("layer " + std::to_string(layer) + ": expert " + id +
               " out of range: the trace has " + std::to_string(header_.shape.experts) +
               " experts per layer");
        if (std::find(experts, experts + k, experts[k]) != experts + k)
          fail("layer " + std::to_string(layer) + ": expert " + id +
               " appears twice: a token chooses " + std::to_string(row_) +
               " distinct experts per layer");
      }
  }

  // True when some row has weights. A row is all finite (weights) or all NaN (none), as in a CSV.
  bool check_weights(const float* weights) const {
    bool any = false;
    for (std::uint32_t layer = 0; layer < header_.shape.layers; ++layer, weights += row_) {
      std::size_t numbers = 0, missing = 0;
      for (std::size_t k = 0; k < row_; ++k) {
        numbers += std::isfinite(weights[k]);
        missing += std::isnan(weights[k]);
      }
      if (numbers != row_ && missing != row_)
        fail("layer " + std::to_string(layer) + ": weights must be " + std::to_string(row_) +
             " finite numbers or all NaN (no weights)");
      any |= numbers == row_;
    }
    return any;
  }

  Phase phase(char byte) const {
    const auto value = static_cast<unsigned char>(byte);
    if (value > 1)
      fail("phase " + std::to_string(value) + " is neither 0 (decode) nor 1 (prefill)");
    return static_cast<Phase>(value);
  }

  std::string name_;
  File file_;
  Header header_;
  std::size_t row_ = 0;     // top_k
  std::size_t n_ = 0;       // expert ids per token
  std::size_t record_ = 0;  // bytes per token record
  std::vector<char> buffer_;
  std::size_t begin_ = 0, end_ = 0;  // unread bytes of buffer_
  std::uint64_t read_ = 0;           // token records returned so far
  bool at_end_ = false;
  SequenceOrder order_;
};

bool parse_integer(std::string_view text, std::uint64_t& value) {
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && ec == std::errc() && ptr == text.data() + text.size();
}

// One pass over a CSV for its shape; the rows are checked only as far as the shape needs (opening
// the file with the shape validates the rest).
TraceShape probe_csv(const fs::path& path) {
  const std::string name = path.string();
  std::size_t line_number = 0;
  const auto fail = [&](const std::string& what) {
    throw InputError(name + ":" + std::to_string(line_number), what);
  };
  std::size_t columns = 0;  // from the header: 4 without weights, 5 with, 6 with phases too
  std::uint64_t max_layer = 0, max_expert = 0, top_k = 0;
  bool any_row = false;
  const auto row = [&](std::string_view line) {
    if (line_number == 1) {
      columns = csv_columns(line);
      if (columns == 0) fail(std::string("header must be exactly ") + kCsvHeadersAccepted);
      return;
    }
    if (line.empty()) return;
    std::string_view fields[4];
    std::size_t count = 0;
    for (std::string_view rest = line;; ++count) {
      const std::size_t comma = rest.find(',');
      if (count < 4) fields[count] = rest.substr(0, comma);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (++count != columns)
      fail("row has " + std::to_string(count) + " fields but expected " + std::to_string(columns));
    std::uint64_t layer = 0;
    if (!parse_integer(fields[2], layer) || layer >= UINT32_MAX)
      fail("layer '" + std::string(fields[2].substr(0, 60)) + "' is not an integer in 0.." +
           std::to_string(UINT32_MAX - 1));
    max_layer = std::max(max_layer, layer);
    std::uint64_t experts = 0;
    for (std::string_view rest = fields[3];; ++experts) {
      const std::size_t semicolon = rest.find(';');
      std::uint64_t id = 0;
      if (!parse_integer(rest.substr(0, semicolon), id) || id > 65535)
        fail("expert '" + std::string(rest.substr(0, std::min<std::size_t>(semicolon, 60))) +
             "' is not an integer in 0..65535 (experts are ';'-separated)");
      max_expert = std::max(max_expert, id);
      if (semicolon == std::string_view::npos) break;
      rest.remove_prefix(semicolon + 1);
    }
    ++experts;
    if (!any_row) top_k = experts;
    if (experts != top_k)
      fail("row has " + std::to_string(experts) + " experts but the first row has " +
           std::to_string(top_k));
    any_row = true;
  };

  LineReader reader(path);
  for (std::string_view line; reader.next(line);) {
    ++line_number;
    row(line);
  }
  if (line_number == 0) {
    line_number = 1;
    fail("empty file: expected the header line '" + std::string(kCsvHeader) + "'");
  }
  if (!any_row) throw InputError(name, "the trace has no rows to infer its shape from");
  const TraceShape shape{static_cast<std::uint32_t>(max_layer + 1),
                         static_cast<std::uint32_t>(top_k),
                         static_cast<std::uint32_t>(max_expert + 1)};
  try {
    validate(shape);
  } catch (const std::invalid_argument& error) {
    throw InputError(name, error.what());
  }
  return shape;
}

template <typename T>
void put(std::string& buffer, const T& value) {
  buffer.append(reinterpret_cast<const char*>(&value), sizeof value);
}

class BinaryWriter final : public TraceWriter {
 public:
  BinaryWriter(std::ostream& out, TraceShape shape, std::uint64_t tokens, bool weights, bool phases)
      : TraceWriter(out, shape, tokens, weights, phases), n_(std::size_t{shape.layers} * shape.top_k) {
    buffer_.append(kMagic, sizeof kMagic);
    put(buffer_, kVersion);
    put(buffer_, shape.layers);
    put(buffer_, shape.top_k);
    put(buffer_, shape.experts);
    put(buffer_, std::uint32_t{(weights ? kHasWeights : 0) | (phases ? kHasPhases : 0)});
    put(buffer_, tokens);
    if (weights) none_.assign(n_, kNoWeight);
  }

 private:
  void record(std::uint32_t seq, std::uint32_t index, const std::uint16_t* experts,
              const float* weights, Phase phase) override {
    put(buffer_, seq);
    put(buffer_, index);
    buffer_.append(reinterpret_cast<const char*>(experts), n_ * sizeof(std::uint16_t));
    if (weights_)
      buffer_.append(reinterpret_cast<const char*>(weights ? weights : none_.data()), n_ * sizeof(float));
    if (phases_) put(buffer_, static_cast<std::uint8_t>(phase));
  }

  std::size_t n_;           // expert ids per token
  std::vector<float> none_;  // the weights of a token without any, in a trace with weights
};

}  // namespace

bool is_binary_trace(const fs::path& path) {
  char bytes[8];
  return head(path, bytes) == std::string_view(kMagic, sizeof kMagic);
}

std::unique_ptr<TraceSource> open_trace(const fs::path& path, TraceShape shape) {
  validate(shape);
  if (looks_binary(path)) return std::make_unique<BinarySource>(path, shape);
  return open_csv(path, shape);
}

TraceShape probe_shape(const fs::path& path) {
  if (!looks_binary(path)) return probe_csv(path);
  const File file = open_file(path);
  return read_header(file.get(), path.string()).shape;
}

std::unique_ptr<TraceWriter> binary_writer(std::ostream& out, TraceShape shape, std::uint64_t tokens,
                                           bool weights, bool phases) {
  return std::make_unique<BinaryWriter>(out, shape, tokens, weights, phases);
}

void write_binary(const RoutingTrace& trace, std::ostream& out) {
  BinaryWriter writer(out, trace.shape(), trace.tokens(), trace.has_weights(), trace.has_phases());
  writer.write(trace);
  writer.finish();
}

namespace {

// Writes a trace to `path` in the form its name says, with `fill` giving the writer its tokens.
void save(const fs::path& path, TraceShape shape, std::uint64_t tokens, bool weights, bool phases,
          const std::function<void(TraceWriter&)>& fill) {
  std::error_code error;
  if (fs::is_directory(path, error))
    throw InputError(path.string(), "is a directory, expected a trace file name");
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  posix::write_file_atomic(path, [&](std::ostream& out) {
    const auto writer = path.extension() == ".rmtrace" ? binary_writer(out, shape, tokens, weights, phases)
                                                       : csv_writer(out, shape, tokens, weights, phases);
    fill(*writer);
    writer->finish();
  });
}

}  // namespace

void save_trace(const fs::path& path, const RoutingTrace& trace) {
  save(path, trace.shape(), trace.tokens(), trace.has_weights(), trace.has_phases(),
       [&](TraceWriter& writer) { writer.write(trace); });
}

void save_trace(const fs::path& path, TraceSource& source, TraceShape shape, std::uint64_t tokens,
                bool weights, bool phases) {
  save(path, shape, tokens, weights, phases, [&](TraceWriter& writer) {
    Token token{};
    while (source.next(token)) writer.write(token);
  });
}

}  // namespace rmai::traces
