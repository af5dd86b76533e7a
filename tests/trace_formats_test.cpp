// Tests of trace files in either form (traces/binary.cpp): the binary form round trip and its
// validation, form sniffing, shape probing, atomic saving, and `rmai trace convert`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "config/errors.hpp"
#include "traces/generator.hpp"
#include "traces/trace.hpp"

namespace {

namespace fs = std::filesystem;
using rmai::traces::Phase;
using rmai::traces::RoutingTrace;
using rmai::traces::Token;
using rmai::traces::TraceShape;
using ::testing::HasSubstr;

constexpr TraceShape kShape{3, 2, 8};  // 3 MoE layers, top-2 of 8 experts
constexpr std::size_t kHeaderSize = 36;
constexpr std::size_t kRecord = 8 + 3 * 2 * 2;                // seq, index, 6 ids
constexpr std::size_t kWeightedRecord = kRecord + 3 * 2 * 4;  // and 6 weights

// Canonical CSV (what write_csv writes back unchanged): three sequences interleaved with gaps in
// their indices; a first token without weights, then rows with and without them, weights in
// several shortest forms.
const std::string kCsv =
    "seq,token,layer,experts,weights\n"
    "0,0,0,7;0,\n"
    "0,0,1,1;2,\n"
    "0,0,2,3;4,\n"
    "1,5,0,2;5,0.1;0.9\n"
    "1,5,1,0;1,\n"
    "1,5,2,6;7,1e-07;0.99999994\n"
    "0,1,0,0;1,0.5;-0\n"
    "0,1,1,1;3,0.33333334;2.5e+10\n"
    "0,1,2,4;5,-1.5;3.4028235e+38\n"
    "2,0,0,5;4,\n"
    "2,0,1,3;2,\n"
    "2,0,2,1;0,\n"
    "1,9,0,7;6,0.25;0.75\n"
    "1,9,1,5;4,0.25;0.75\n"
    "1,9,2,3;2,0.25;0.75\n";

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string binary_of(const RoutingTrace& trace) {
  std::ostringstream out;
  rmai::traces::write_binary(trace, out);
  return out.str();
}

template <typename T>
void poke(std::string& bytes, std::size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

// A prompt of two tokens for sequence 0 and one for sequence 1, interleaved with their decode
// tokens; canonical (write_csv writes it back unchanged), with weights on some rows.
const std::string kPhasesCsv =
    "seq,token,layer,experts,weights,phase\n"
    "0,0,0,7;0,,prefill\n"
    "0,0,1,1;2,,prefill\n"
    "0,0,2,3;4,,prefill\n"
    "1,0,0,2;5,0.1;0.9,prefill\n"
    "1,0,1,0;1,0.5;0.5,prefill\n"
    "1,0,2,6;7,1e-07;0.99999994,prefill\n"
    "0,1,0,0;1,,prefill\n"
    "0,1,1,1;3,,prefill\n"
    "0,1,2,4;5,,prefill\n"
    "1,1,0,5;4,,decode\n"
    "1,1,1,3;2,,decode\n"
    "1,1,2,1;0,,decode\n"
    "0,2,0,7;6,0.25;0.75,decode\n"
    "0,2,1,5;4,0.25;0.75,decode\n"
    "0,2,2,3;2,0.25;0.75,decode\n";

// Two tokens of sequence 0 (indices 0 and 1), with or without weights.
RoutingTrace two_tokens(bool weights) {
  RoutingTrace trace(kShape);
  const std::vector<float> w =
      weights ? std::vector<float>{0.6f, 0.4f, 0.6f, 0.4f, 0.6f, 0.4f} : std::vector<float>{};
  trace.append({0, 0, {0, 1, 2, 3, 4, 5}, w});
  trace.append({0, 1, {1, 0, 3, 2, 5, 4}, w});
  return trace;
}

class TraceFormatsTest : public rmai::testing::TempDirTest {
 protected:
  RoutingTrace load(const fs::path& path, TraceShape shape = kShape) {
    auto source = rmai::traces::open_trace(path, shape);
    return RoutingTrace::load(*source, shape);
  }

  // Loading `bytes` as a trace of `shape` must fail with a message naming the file and containing
  // each of `parts`.
  void expect_error(const std::string& bytes, const std::vector<std::string>& parts,
                    TraceShape shape = kShape) {
    const fs::path path = write("bad.rmtrace", bytes);
    try {
      load(path, shape);
      ADD_FAILURE() << "no error; expected " << parts.front();
    } catch (const rmai::InputError& error) {
      EXPECT_THAT(error.what(), HasSubstr(path.string() + ": "));
      for (const auto& part : parts) EXPECT_THAT(error.what(), HasSubstr(part));
    }
  }
};

// ---- round trips ----------------------------------------------------------------------------

TEST_F(TraceFormatsTest, CsvBinaryCsvIsByteIdentical) {
  const fs::path csv = write("in.csv", kCsv);
  const RoutingTrace trace = load(csv);
  std::ostringstream canonical;
  rmai::traces::write_csv(trace, canonical);
  ASSERT_EQ(canonical.str(), kCsv) << "the fixture must be canonical CSV";

  const fs::path binary = dir_ / "trace.rmtrace";
  rmai::traces::save_trace(binary, trace);
  EXPECT_TRUE(rmai::traces::is_binary_trace(binary));
  EXPECT_EQ(fs::file_size(binary), kHeaderSize + 5 * kWeightedRecord);
  const fs::path back = dir_ / "back.csv";
  rmai::traces::save_trace(back, load(binary));
  EXPECT_FALSE(rmai::traces::is_binary_trace(back));
  EXPECT_EQ(read(back), kCsv);

  // Without any weights the records carry none.
  RoutingTrace plain(kShape);
  plain.append({4, 2, {1, 2, 3, 4, 5, 6}, {}});
  rmai::traces::save_trace(binary, plain);
  EXPECT_EQ(fs::file_size(binary), kHeaderSize + kRecord);
  const RoutingTrace plain_back = load(binary);
  EXPECT_FALSE(plain_back.has_weights());
  EXPECT_TRUE(plain_back == plain);
}

TEST_F(TraceFormatsTest, BinaryTokensEqualCsvTokens) {
  const fs::path csv = write("in.csv", kCsv);
  const fs::path binary = dir_ / "trace.rmtrace";
  rmai::traces::save_trace(binary, load(csv));
  EXPECT_TRUE(load(binary) == load(csv));

  // Token by token too: a token without weights has none (not NaNs), as from the CSV.
  auto from_csv = rmai::traces::open_csv(csv, kShape);
  auto from_binary = rmai::traces::open_trace(binary, kShape);
  Token a{}, b{};
  std::size_t tokens = 0;
  while (from_csv->next(a)) {
    ASSERT_TRUE(from_binary->next(b));
    EXPECT_EQ(a.seq, b.seq);
    EXPECT_EQ(a.index, b.index);
    EXPECT_EQ(a.experts, b.experts);
    ASSERT_EQ(a.weights.size(), b.weights.size()) << "token " << tokens;
    for (std::size_t i = 0; i < a.weights.size(); ++i)
      EXPECT_TRUE(std::memcmp(&a.weights[i], &b.weights[i], sizeof(float)) == 0 ||
                  (std::isnan(a.weights[i]) && std::isnan(b.weights[i])));
    ++tokens;
  }
  EXPECT_EQ(tokens, 5u);
  EXPECT_FALSE(from_binary->next(b));
  EXPECT_FALSE(from_binary->next(b));  // still at the end, no error
}

TEST_F(TraceFormatsTest, OpenTraceRecognizesTheForm) {
  const fs::path csv = write("trace.rmtrace", kCsv);  // the content decides, not the name
  EXPECT_FALSE(rmai::traces::is_binary_trace(csv));
  EXPECT_EQ(load(csv).tokens(), 5u);

  const fs::path empty = write("empty", "");
  EXPECT_FALSE(rmai::traces::is_binary_trace(empty));
  try {
    load(empty);
    ADD_FAILURE();
  } catch (const rmai::InputError& error) {
    EXPECT_THAT(error.what(), HasSubstr(empty.string() + ":1: empty file"));
  }
  EXPECT_FALSE(rmai::traces::is_binary_trace(dir_ / "missing"));
  EXPECT_THROW(load(dir_ / "missing"), rmai::InputError);
  EXPECT_THROW(load(dir_), rmai::InputError);
}

TEST_F(TraceFormatsTest, PhasesRoundTripThroughBothForms) {
  const fs::path csv = write("phases.csv", kPhasesCsv);
  const RoutingTrace trace = load(csv);
  ASSERT_EQ(trace.tokens(), 5u);
  EXPECT_TRUE(trace.has_phases());
  for (std::size_t t = 0; t < 5; ++t)
    EXPECT_EQ(trace.phase(t), t < 3 ? Phase::Prefill : Phase::Decode) << t;
  std::ostringstream canonical;
  rmai::traces::write_csv(trace, canonical);
  ASSERT_EQ(canonical.str(), kPhasesCsv) << "the fixture must be canonical CSV";

  // Binary: flag bit 1, and one phase byte at the end of each record (0 decode, 1 prefill).
  const fs::path binary = dir_ / "phases.rmtrace";
  rmai::traces::save_trace(binary, trace);
  const std::string bytes = read(binary);
  ASSERT_EQ(bytes.size(), kHeaderSize + 5 * (kWeightedRecord + 1));
  std::uint32_t flags = 0;
  std::memcpy(&flags, bytes.data() + 24, sizeof flags);
  EXPECT_EQ(flags, 3u);  // weights and phases
  for (std::size_t t = 0; t < 5; ++t)
    EXPECT_EQ(bytes[kHeaderSize + (t + 1) * (kWeightedRecord + 1) - 1], t < 3 ? 1 : 0) << t;
  const RoutingTrace back = load(binary);
  EXPECT_TRUE(back == trace);
  const fs::path again = dir_ / "again.csv";
  rmai::traces::save_trace(again, back);
  EXPECT_EQ(read(again), kPhasesCsv);

  // Token by token, the phase comes with the token; without weights the phase byte follows the ids.
  auto source = rmai::traces::open_trace(binary, kShape);
  Token token{};
  for (std::size_t t = 0; source->next(token); ++t) EXPECT_EQ(token.phase, t < 3 ? Phase::Prefill : Phase::Decode);
  RoutingTrace plain(kShape);
  plain.append({0, 0, {0, 1, 2, 3, 4, 5}, {}, Phase::Prefill});
  plain.append({0, 1, {1, 0, 3, 2, 5, 4}, {}, Phase::Decode});
  const std::string plain_bytes = binary_of(plain);
  ASSERT_EQ(plain_bytes.size(), kHeaderSize + 2 * (kRecord + 1));
  EXPECT_EQ(plain_bytes[kHeaderSize + kRecord], 1);
  EXPECT_TRUE(load(write("plain.rmtrace", plain_bytes)) == plain);
}

TEST_F(TraceFormatsTest, TracesWithoutPrefillKeepTheirBytes) {
  // A trace of decode tokens only is written exactly as before phases existed: no flag bit 1, no
  // phase byte. The bytes are spelt out here: the format must not drift.
  RoutingTrace trace(kShape);
  trace.append({7, 3, {0, 1, 2, 3, 4, 5}, {}, Phase::Decode});
  EXPECT_FALSE(trace.has_phases());
  std::string expected("RMAITRC\0", 8);
  const auto u32 = [&](std::uint32_t v) { expected.append(reinterpret_cast<const char*>(&v), 4); };
  for (const std::uint32_t v : {1u, 3u, 2u, 8u, 0u}) u32(v);  // version, layers, top_k, experts, flags
  const std::uint64_t tokens = 1;
  expected.append(reinterpret_cast<const char*>(&tokens), 8);
  u32(7);
  u32(3);
  for (const std::uint16_t id : {0, 1, 2, 3, 4, 5}) expected.append(reinterpret_cast<const char*>(&id), 2);
  EXPECT_EQ(binary_of(trace), expected);
  // Read back, every token is decode and the trace has no phases (so it is written the same again).
  const RoutingTrace back = load(write("old.rmtrace", expected));
  EXPECT_FALSE(back.has_phases());
  EXPECT_EQ(back.phase(0), Phase::Decode);
  EXPECT_EQ(binary_of(back), expected);
  // The CSV fixture without a phase column too (CsvBinaryCsvIsByteIdentical has the bytes).
  EXPECT_FALSE(load(write("in.csv", kCsv)).has_phases());
}

// ---- shape probing --------------------------------------------------------------------------

TEST_F(TraceFormatsTest, ProbeShape) {
  // CSV: layers = largest layer + 1, top_k = experts of the first row, experts = largest id + 1.
  EXPECT_EQ(rmai::traces::probe_shape(write("in.csv", kCsv)), (TraceShape{3, 2, 8}));
  const std::string small = "seq,token,layer,experts\r\n0,0,0,1;4\r\n0,0,1,0;2\r\n\r\n";
  EXPECT_EQ(rmai::traces::probe_shape(write("small.csv", small)), (TraceShape{2, 2, 5}));
  // Binary: the header, whatever the ids are.
  const fs::path binary = dir_ / "t.rmtrace";
  rmai::traces::save_trace(binary, two_tokens(false));
  EXPECT_EQ(rmai::traces::probe_shape(binary), kShape);

  const auto probe_error = [&](const std::string& content, const std::string& where,
                               const std::string& what) {
    const fs::path path = write("probe.csv", content);
    try {
      rmai::traces::probe_shape(path);
      ADD_FAILURE() << "no error for " << what;
    } catch (const rmai::InputError& error) {
      EXPECT_THAT(error.what(), HasSubstr(path.string() + where + ": " + what));
    }
  };
  const std::string h = "seq,token,layer,experts,weights\n";
  probe_error("", ":1", "empty file");
  probe_error("seq,token\n0,0\n", ":1", "header must be exactly");
  probe_error(h, "", "the trace has no rows");
  probe_error(h + "0,0,0,1;2,\n0,0,1,3;4;5,\n", ":3", "row has 3 experts but the first row has 2");
  probe_error(h + "0,0,0,1;x,\n", ":2", "expert 'x' is not an integer");
  probe_error(h + "0,0,-1,1;2,\n", ":2", "layer '-1' is not an integer");
  probe_error(h + "0,0,0,1;2\n", ":2", "row has 4 fields but expected 5");
  // The phase column is one more field; the shape does not depend on it.
  EXPECT_EQ(rmai::traces::probe_shape(write("phases.csv", kPhasesCsv)), kShape);
  probe_error("seq,token,layer,experts,weights,phase\n0,0,0,1;2,\n", ":2", "row has 5 fields but expected 6");
}

// ---- saving ---------------------------------------------------------------------------------

TEST_F(TraceFormatsTest, SaveCreatesTheDirectory) {
  const fs::path path = dir_ / "a" / "b" / "t.rmtrace";
  rmai::traces::save_trace(path, two_tokens(true));
  EXPECT_TRUE(load(path) == two_tokens(true));
  EXPECT_EQ(std::distance(fs::directory_iterator(path.parent_path()), {}), 1);  // no temporary
}

TEST_F(TraceFormatsTest, FailedSaveLeavesNoFile) {
  const auto trace = two_tokens(true);
  const auto entries = [&] {
    std::vector<std::string> names;
    for (const auto& entry : fs::recursive_directory_iterator(dir_))
      names.push_back(entry.path().lexically_relative(dir_).string());
    return names;
  };
  // The path is a directory.
  fs::create_directory(dir_ / "out.csv");
  EXPECT_THROW(rmai::traces::save_trace(dir_ / "out.csv", trace), rmai::InputError);
  EXPECT_EQ(entries(), std::vector<std::string>{"out.csv"});
  fs::remove(dir_ / "out.csv");

  // The parent is a file.
  write("file", "x");
  EXPECT_ANY_THROW(rmai::traces::save_trace(dir_ / "file" / "out.csv", trace));
  EXPECT_EQ(entries(), std::vector<std::string>{"file"});
  fs::remove(dir_ / "file");

  // The write fails half-way: a file size limit makes write() fail with EFBIG (works as root).
  RoutingTrace big(kShape);
  for (std::uint32_t t = 0; t < 20000; ++t) big.append({0, t, {0, 1, 2, 3, 4, 5}, {}});
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  rlimit small = old;
  small.rlim_cur = 100000;
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  for (const char* name : {"big.csv", "big.rmtrace"})
    EXPECT_ANY_THROW(rmai::traces::save_trace(dir_ / name, big)) << name;
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(entries(), std::vector<std::string>{});

  // A read-only directory (root may write anyway).
  if (::geteuid() != 0) {
    fs::create_directory(dir_ / "ro");
    fs::permissions(dir_ / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_ANY_THROW(rmai::traces::save_trace(dir_ / "ro" / "out.rmtrace", trace));
    fs::permissions(dir_ / "ro", fs::perms::owner_all);
    EXPECT_EQ(entries(), std::vector<std::string>{"ro"});
  }
}

// ---- streamed writing -----------------------------------------------------------------------

TEST_F(TraceFormatsTest, StreamedSaveIsByteIdenticalToSavingTheTraceInMemory) {
  // A generated trace of 3 interleaved sequences, large enough for the writers to spill several
  // blocks (1 MiB), streamed from its source and written from memory, in both forms.
  const TraceShape shape{4, 2, 16};
  const auto generator = rmai::traces::zipf_generator(shape, 0.8, 0.4, 2);
  constexpr std::uint64_t kTokens = 100000;
  for (const std::string form : {".csv", ".rmtrace"}) {
    const fs::path streamed = dir_ / ("streamed" + form), held = dir_ / ("held" + form);
    const auto source = rmai::traces::synthetic_source(generator, kTokens, 9, 3);
    rmai::traces::save_trace(streamed, *source, shape, kTokens, false);
    rmai::traces::save_trace(held, rmai::traces::generate(generator, kTokens, 9, 3));
    EXPECT_GT(fs::file_size(held), 2u << 20) << form;
    EXPECT_EQ(read(streamed), read(held)) << form;
    EXPECT_EQ(load(streamed, shape).tokens(), kTokens) << form;
  }
  // With prompts: their phases are announced, and streamed as held.
  for (const std::string form : {".csv", ".rmtrace"}) {
    const fs::path streamed = dir_ / ("prompts" + form), held = dir_ / ("prompts-held" + form);
    const auto source = rmai::traces::synthetic_source(generator, 100, 9, 3, 4);
    rmai::traces::save_trace(streamed, *source, shape, 100 + 3 * 4, false, true);
    const RoutingTrace trace = rmai::traces::generate(generator, 100, 9, 3, 4);
    ASSERT_TRUE(trace.has_phases());
    rmai::traces::save_trace(held, trace);
    EXPECT_EQ(read(streamed), read(held)) << form;
    EXPECT_TRUE(load(streamed, shape) == trace) << form;
  }
  // With weights, rows without them and sequences interleaved (the CSV fixture), read as a stream.
  const fs::path csv = write("in.csv", kCsv);
  for (const std::string form : {".csv", ".rmtrace"}) {
    const fs::path streamed = dir_ / ("weights" + form), held = dir_ / ("weights-held" + form);
    const auto source = rmai::traces::open_csv(csv, kShape);
    rmai::traces::save_trace(streamed, *source, kShape, 5, true);
    rmai::traces::save_trace(held, load(csv));
    EXPECT_EQ(read(streamed), read(held)) << form;
  }
  EXPECT_EQ(read(dir_ / "weights.csv"), kCsv);
}

TEST_F(TraceFormatsTest, WritersHoldToTheAnnouncedTokens) {
  const std::vector<std::uint16_t> experts{0, 1, 2, 3, 4, 5};
  const std::vector<float> weights(6, 0.5f);
  RoutingTrace expected(kShape);
  expected.append({0, 0, experts, {}});
  expected.append({0, 1, experts, {}});
  std::ostringstream csv_of;
  rmai::traces::write_csv(expected, csv_of);
  using Make = std::unique_ptr<rmai::traces::TraceWriter> (*)(std::ostream&, TraceShape, std::uint64_t, bool, bool);
  for (const auto& [make, bytes] : {std::pair<Make, std::string>{&rmai::traces::csv_writer, csv_of.str()},
                                    {&rmai::traces::binary_writer, binary_of(expected)}}) {
    std::ostringstream out;
    auto writer = make(out, kShape, 2, false, false);
    writer->write(0, 0, experts, {});
    EXPECT_THROW(writer->finish(), std::logic_error);                              // 1 of 2
    EXPECT_THROW(writer->write(0, 1, {experts.data(), 4}, {}), std::logic_error);  // a short token
    EXPECT_THROW(writer->write(0, 1, experts, weights), std::logic_error);         // weights not announced
    EXPECT_THROW(writer->write(0, 1, experts, {}, Phase::Prefill), std::logic_error);  // phases not announced
    writer->write(0, 1, experts, {});
    EXPECT_THROW(writer->write(0, 2, experts, {}), std::logic_error);  // a third
    writer->finish();
    EXPECT_EQ(out.str(), bytes);  // the refused tokens left nothing in the output
  }
  // A source shorter or longer than announced: nothing is left at the path.
  const fs::path csv = write("in.csv", kCsv);
  for (const std::uint64_t announced : {4, 6})
    for (const std::string name : {"out.csv", "out.rmtrace"}) {
      const auto source = rmai::traces::open_csv(csv, kShape);
      EXPECT_THROW(rmai::traces::save_trace(dir_ / name, *source, kShape, announced, true), std::logic_error);
      EXPECT_FALSE(fs::exists(dir_ / name));
      EXPECT_TRUE(rmai::testing::temporaries_under(dir_).empty());
    }
}

// ---- bad binary input -----------------------------------------------------------------------

TEST_F(TraceFormatsTest, BadHeader) {
  const std::string good = binary_of(two_tokens(false));
  std::string bytes = good;
  bytes[3] = 'X';  // "RMAXTRC\0": still binary-looking (NUL), so reported as a bad magic
  expect_error(bytes, {"header", "bad magic"});
  bytes = good;
  poke<std::uint32_t>(bytes, 8, 2);
  expect_error(bytes, {"header", "unsupported format version 2 (this build reads version 1)"});
  bytes = good;
  poke<std::uint32_t>(bytes, 24, 6);
  expect_error(bytes, {"header", "unknown flags 6 (version 1 knows bits 0 and 1 only)"});
  bytes = good;
  poke<std::uint32_t>(bytes, 24, 2);  // phases announced, but the records have no phase byte
  expect_error(bytes, {"header", "announces 2 token records of 21 bytes", "but the file has 76: truncated file"});
  bytes = good;
  poke<std::uint32_t>(bytes, 16, 9);  // top_k 9 of 8 experts
  expect_error(bytes, {"header", "top_k 9 exceeds"});
  expect_error(good.substr(0, 20), {"header", "truncated file: the header is 20 of 36 bytes"});
  expect_error(good,
               {"header",
                "the file holds a trace of 3 layers, top-2 of 8 experts but 3 layers, "
                "top-2 of 16 experts are expected"},
               TraceShape{3, 2, 16});
}

TEST_F(TraceFormatsTest, TruncatedOrTrailing) {
  const std::string good = binary_of(two_tokens(true));
  ASSERT_EQ(good.size(), kHeaderSize + 2 * kWeightedRecord);
  // A regular file's size is checked against the header before anything is read or allocated.
  const std::string announces = "header: the header announces 2 token records of 44 bytes (124 bytes with the header)";
  expect_error(good.substr(0, good.size() - 5), {announces, "but the file has 119: truncated file"});
  expect_error(good.substr(0, kHeaderSize), {announces, "but the file has 36: truncated file"});
  expect_error(good + "x", {announces, "but the file has 125: trailing data"});
  std::string more = good;
  poke<std::uint64_t>(more, 28, 1);  // the header announces one token, two follow
  expect_error(more, {"announces 1 token records of 44 bytes (80 bytes with the header) but the file has 124"});
}

TEST_F(TraceFormatsTest, BadRecords) {
  const std::string good = binary_of(two_tokens(true));
  const std::size_t second = kHeaderSize + kWeightedRecord;  // where token record 1 starts
  const std::string where = "token record 1 at byte " + std::to_string(second);
  std::string bytes = good;
  poke<std::uint16_t>(bytes, second + 8 + 2 * 3, 9);  // layer 1, k = 1
  expect_error(bytes, {where, "layer 1: expert 9 out of range: the trace has 8 experts per layer"});
  bytes = good;
  poke<std::uint16_t>(bytes, second + 8 + 2 * 5, 5);  // layer 2 is now 5;5
  expect_error(bytes, {where, "layer 2: expert 5 appears twice"});
  bytes = good;
  poke<std::uint32_t>(bytes, second + 4, 0);  // index 0 after index 0
  expect_error(bytes, {where,
                       "token 0 of sequence 0 comes after token 0: tokens of a sequence must be "
                       "in increasing order"});
  bytes = good;
  const std::size_t weights = second + kRecord;
  poke<float>(bytes, weights + 4 * 2, rmai::traces::kNoWeight);  // layer 1: NaN and a number
  expect_error(bytes, {where, "layer 1: weights must be 2 finite numbers or all NaN"});
  bytes = good;
  poke<float>(bytes, weights, INFINITY);
  expect_error(bytes, {where, "layer 0: weights must be"});
}

TEST_F(TraceFormatsTest, BadPhases) {
  RoutingTrace trace(kShape);
  trace.append({0, 0, {0, 1, 2, 3, 4, 5}, {}, Phase::Prefill});
  trace.append({1, 0, {0, 1, 2, 3, 4, 5}, {}, Phase::Decode});
  trace.append({0, 1, {1, 0, 3, 2, 5, 4}, {}, Phase::Decode});
  const std::string good = binary_of(trace);
  constexpr std::size_t kPhased = kRecord + 1;
  ASSERT_EQ(good.size(), kHeaderSize + 3 * kPhased);
  std::string bytes = good;
  bytes[kHeaderSize + 2 * kPhased - 1] = 2;  // record 1's phase byte
  expect_error(bytes, {"token record 1 at byte " + std::to_string(kHeaderSize + kPhased),
                       "phase 2 is neither 0 (decode) nor 1 (prefill)"});
  // A prefill token after a decode token of its sequence; other sequences do not matter.
  RoutingTrace late = trace;
  late.append({1, 1, {1, 0, 3, 2, 5, 4}, {}, Phase::Prefill});
  expect_error(binary_of(late), {"token record 3 at byte " + std::to_string(kHeaderSize + 3 * kPhased),
                                 "prefill token 1 of sequence 1 comes after its decode token 0",
                                 "prefill tokens (its prompt) come before its first decode token"});
  RoutingTrace fine = trace;
  fine.append({2, 0, {1, 0, 3, 2, 5, 4}, {}, Phase::Prefill});  // a new sequence's prompt after decoding
  EXPECT_TRUE(load(write("fine.rmtrace", binary_of(fine))) == fine);
}

TEST_F(TraceFormatsTest, SequencesInterleave) {
  // The order rule is per sequence: 0:5, 1:0, 0:6, 1:1 is fine; 0:5, 1:0, 0:5 is not.
  RoutingTrace trace(kShape);
  for (const auto& [seq, index] : {std::pair{0u, 5u}, {1u, 0u}, {0u, 6u}, {1u, 1u}})
    trace.append({seq, index, {0, 1, 0, 1, 0, 1}, {}});
  EXPECT_EQ(load(write("ok.rmtrace", binary_of(trace))).tokens(), 4u);
  trace.append({0, 6, {0, 1, 0, 1, 0, 1}, {}});
  expect_error(binary_of(trace),
               {"token record 4 at byte " + std::to_string(kHeaderSize + 4 * kRecord),
                "token 6 of sequence 0 comes after token 6"});
}

// ---- rmai trace convert ---------------------------------------------------------------------

TEST_F(TraceFormatsTest, ConvertCommand) {
  using rmai::testing::run;
  const fs::path sample =
      fs::path(RMAI_SOURCE_DIR) / "traces/samples/mixtral-8x7b-synthetic-256.csv";
  const fs::path binary = dir_ / "out" / "mixtral.rmtrace";
  auto r =
      run({"trace", "convert", sample.string(), "-o", binary.string(), "--model", "mixtral-8x7b"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("256 tokens"));
  EXPECT_THAT(r.err, HasSubstr(binary.string()));
  EXPECT_TRUE(rmai::traces::is_binary_trace(binary));
  EXPECT_EQ(rmai::traces::probe_shape(binary), (TraceShape{32, 2, 8}));

  // Back to CSV without --model: the shape comes from the binary header.
  const fs::path csv = dir_ / "back.csv";
  r = run({"trace", "convert", binary.string(), "-o", csv.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read(csv), read(sample));

  for (const auto& args : std::vector<std::vector<std::string>>{
           {"trace", "convert", sample.string()},                               // no -o
           {"trace", "convert", "-o", csv.string()},                            // no input
           {"trace", "convert", sample.string(), "-o"},                         // -o without value
           {"trace", "convert", sample.string(), "-o", csv.string(), "--bad"},  // unknown option
           {"trace", "convert", sample.string(), "-o", csv.string(), "--model", "nope"},
           {"trace", "convert", (dir_ / "missing.csv").string(), "-o", csv.string()},
       }) {
    r = run(args);
    EXPECT_EQ(r.exit_code, 2) << args.back() << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("rmai: error: "));
  }
  // A model of another shape: the file's line names the mismatch.
  r = run({"trace", "convert", binary.string(), "-o", csv.string(), "--model", "olmoe-1b-7b"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("the file holds a trace of 32 layers, top-2 of 8 experts"));
  EXPECT_EQ(read(csv), read(sample));  // untouched by the failed conversions
}

}  // namespace
