// Tests of the routing-trace library: CSV round trip and validation, synthetic generator.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "config/errors.hpp"
#include "traces/generator.hpp"
#include "traces/trace.hpp"

namespace fs = std::filesystem;
using rmai::traces::Phase;
using rmai::traces::RoutingTrace;
using rmai::traces::TraceShape;
using ::testing::HasSubstr;

namespace {

// The parametric generator (models/synthetic: zipf or uniform popularity, one reuse) in one call.
struct SyntheticParams {
  std::uint64_t tokens, seed;
  double reuse, zipf_exponent;
};
RoutingTrace generate_synthetic(TraceShape shape, const SyntheticParams& p) {
  return rmai::traces::generate(rmai::traces::zipf_generator(shape, p.zipf_exponent, p.reuse, p.seed), p.tokens,
                                p.seed);
}

constexpr TraceShape kSmall{4, 2, 8};  // 4 MoE layers, top-2 of 8 experts
constexpr TraceShape kMixtral{32, 2, 8};
constexpr char kHeader[] = "seq,token,layer,experts,weights\n";

// A directory of its own per test process (ctest may run tests in parallel).
class TracesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("rmai_traces_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& content) {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  RoutingTrace load(const fs::path& path, TraceShape shape = kSmall) {
    auto source = rmai::traces::open_csv(path, shape);
    return RoutingTrace::load(*source, shape);
  }

  // Loading `content` must fail at "name:line: " with a message containing `what`.
  void expect_error(const std::string& name, const std::string& content, std::size_t line,
                    const std::string& what) {
    SCOPED_TRACE(name);
    const fs::path path = write(name, content);
    try {
      load(path);
      ADD_FAILURE() << "no error for " << name;
    } catch (const rmai::InputError& error) {
      EXPECT_THAT(error.what(), HasSubstr(path.string() + ":" + std::to_string(line) + ": "));
      EXPECT_THAT(error.what(), HasSubstr(what));
    }
  }

  fs::path dir_;
};

std::string row(int seq, int token, int layer, const std::string& experts = "0;1",
                const std::string& weights = "") {
  return std::to_string(seq) + "," + std::to_string(token) + "," + std::to_string(layer) + "," +
         experts + "," + weights + "\n";
}

// All rows of a token of the small shape (layers 0..3).
std::string token_rows(int seq, int token) {
  std::string rows;
  for (int layer = 0; layer < 4; ++layer) rows += row(seq, token, layer);
  return rows;
}

// A row of a file with the phase column.
std::string phased(int seq, int token, int layer, const std::string& phase) {
  return std::to_string(seq) + "," + std::to_string(token) + "," + std::to_string(layer) + ",0;1,," + phase + "\n";
}
std::string phased_token(int seq, int token, const std::string& phase) {
  std::string rows;
  for (int layer = 0; layer < 4; ++layer) rows += phased(seq, token, layer, phase);
  return rows;
}
constexpr char kPhaseHeader[] = "seq,token,layer,experts,weights,phase\n";

// Mean over consecutive token pairs and layers of the fraction of the later token's experts that
// the earlier one also chose (docs/interfaces.md, adjacent_reuse); the trace is one sequence.
double adjacent_reuse(const RoutingTrace& trace) {
  const TraceShape& shape = trace.shape();
  double sum = 0;
  for (std::size_t t = 1; t < trace.tokens(); ++t)
    for (std::uint32_t layer = 0; layer < shape.layers; ++layer) {
      const auto now = trace.experts(t, layer);
      const auto before = trace.experts(t - 1, layer);
      for (const auto expert : now)
        sum += std::count(before.begin(), before.end(), expert) > 0 ? 1 : 0;
    }
  return sum / (double(trace.tokens() - 1) * shape.layers * shape.top_k);
}

// counts[layer][expert]: how many tokens chose the expert at the layer.
std::vector<std::vector<double>> counts(const RoutingTrace& trace) {
  const TraceShape& shape = trace.shape();
  std::vector<std::vector<double>> result(shape.layers, std::vector<double>(shape.experts));
  for (std::size_t t = 0; t < trace.tokens(); ++t)
    for (std::uint32_t layer = 0; layer < shape.layers; ++layer)
      for (const auto expert : trace.experts(t, layer)) ++result[layer][expert];
  return result;
}

// ---- round trip -----------------------------------------------------------------------------

TEST_F(TracesTest, RoundTripGenerateWriteRead) {
  for (const TraceShape shape :
       {TraceShape{6, 2, 8}, TraceShape{58, 8, 256}, TraceShape{3, 1, 1}}) {
    const RoutingTrace trace = generate_synthetic(shape, {300, 7, 0.4, 0.8});
    std::ostringstream text;
    rmai::traces::write_csv(trace, text);
    EXPECT_TRUE(text.str().starts_with(kHeader));
    const RoutingTrace back = load(write("trip.csv", text.str()), shape);
    EXPECT_EQ(back.tokens(), 300u);
    EXPECT_TRUE(back == trace);
    std::ostringstream again;
    rmai::traces::write_csv(back, again);
    EXPECT_EQ(again.str(), text.str());
  }
}

TEST_F(TracesTest, WritesCanonicalRows) {
  RoutingTrace trace({2, 2, 8});
  trace.append({3, 10, {7, 0, 1, 2}, {}});
  std::ostringstream text;
  rmai::traces::write_csv(trace, text);
  EXPECT_EQ(text.str(), "seq,token,layer,experts,weights\n3,10,0,7;0,\n3,10,1,1;2,\n");
  // A prefill token anywhere brings the phase column, on every row.
  trace.append({4, 0, {1, 2, 3, 4}, {0.5f, 0.5f, 0.25f, 0.75f}, Phase::Prefill});
  std::ostringstream phases;
  rmai::traces::write_csv(trace, phases);
  EXPECT_EQ(phases.str(),
            "seq,token,layer,experts,weights,phase\n3,10,0,7;0,,decode\n3,10,1,1;2,,decode\n"
            "4,0,0,1;2,0.5;0.5,prefill\n4,0,1,3;4,0.25;0.75,prefill\n");
}

TEST_F(TracesTest, PhaseColumn) {
  // Prompts of sequences 0 and 1 interleaved with decode tokens, round trip byte for byte.
  const std::string content = kPhaseHeader + phased_token(0, 0, "prefill") + phased_token(1, 0, "prefill") +
                              phased_token(0, 1, "prefill") + phased_token(0, 2, "decode") +
                              phased_token(1, 1, "decode") + phased_token(0, 3, "decode");
  const RoutingTrace trace = load(write("phases.csv", content));
  ASSERT_EQ(trace.tokens(), 6u);
  ASSERT_TRUE(trace.has_phases());
  const Phase expected[] = {Phase::Prefill, Phase::Prefill, Phase::Prefill, Phase::Decode, Phase::Decode, Phase::Decode};
  for (std::size_t t = 0; t < 6; ++t) EXPECT_EQ(trace.phase(t), expected[t]) << t;
  std::ostringstream text;
  rmai::traces::write_csv(trace, text);
  EXPECT_EQ(text.str(), content);

  // An empty phase field is decode; a file whose tokens are all decode has no phases, and is written
  // without the column.
  const std::string empty = kPhaseHeader + phased_token(0, 0, "") + phased_token(0, 1, "decode");
  const RoutingTrace decode = load(write("empty.csv", empty));
  ASSERT_EQ(decode.tokens(), 2u);
  EXPECT_FALSE(decode.has_phases());
  EXPECT_EQ(decode.phase(0), Phase::Decode);
  std::ostringstream plain;
  rmai::traces::write_csv(decode, plain);
  EXPECT_EQ(plain.str(), kHeader + token_rows(0, 0) + token_rows(0, 1));
  // A token's rows may mix empty fields and "decode": both are decode.
  const std::string blank_decode = kPhaseHeader + phased(0, 0, 0, "") + phased(0, 0, 1, "decode") +
                                   phased(0, 0, 2, "") + phased(0, 0, 3, "decode");
  EXPECT_EQ(load(write("blank.csv", blank_decode)).tokens(), 1u);

  // Files without the column are all decode and read and write exactly as before.
  const std::string old = kHeader + token_rows(0, 0) + token_rows(1, 0) + token_rows(0, 1);
  const RoutingTrace before = load(write("old.csv", old));
  EXPECT_FALSE(before.has_phases());
  for (std::size_t t = 0; t < before.tokens(); ++t) EXPECT_EQ(before.phase(t), Phase::Decode);
  std::ostringstream again;
  rmai::traces::write_csv(before, again);
  EXPECT_EQ(again.str(), old);
}

TEST_F(TracesTest, AcceptsVariants) {
  // Weights column absent, CRLF line ends, a byte-order mark, weights given, interleaved sequences
  // (batched decode), token indices with gaps, a blank last line, no final newline.
  const std::string content =
      "\xEF\xBB\xBFseq,token,layer,experts\r\n"
      "0,5,0,7;0\r\n0,5,1,1;2\r\n1,0,0,3;4\r\n1,0,1,5;6\r\n0,9,0,0;1\r\n0,9,1,2;3";
  auto shape = TraceShape{2, 2, 8};
  const RoutingTrace trace = load(write("variants.csv", content), shape);
  ASSERT_EQ(trace.tokens(), 3u);
  EXPECT_EQ(trace.seq(1), 1u);
  EXPECT_EQ(trace.index(2), 9u);
  EXPECT_EQ(trace.experts(0, 0)[0], 7);  // order within a row is kept
  EXPECT_EQ(trace.experts(2, 1)[1], 3);

  const std::string weighted = std::string(kHeader) + "0,0,0,1;2,0.80;0.20\n0,0,1,3;4,\n\n";
  EXPECT_EQ(load(write("weighted.csv", weighted), shape).tokens(), 1u);
  EXPECT_EQ(load(write("header_only.csv", kHeader), shape).tokens(), 0u);
}

TEST_F(TracesTest, SampleMatchesGenerator) {
  // The sample is the generator's output: a golden check that the generator stays the same.
  const fs::path sample =
      fs::path(RMAI_SOURCE_DIR) / "traces/samples/mixtral-8x7b-synthetic-256.csv";
  const RoutingTrace trace = load(sample, kMixtral);
  EXPECT_EQ(trace.tokens(), 256u);
  EXPECT_TRUE(trace == generate_synthetic(kMixtral, {256, 1, 0.19, 0.2}));
  // So is the stream without a prompt, asked for explicitly.
  const auto source = rmai::traces::synthetic_source(rmai::traces::zipf_generator(kMixtral, 0.2, 0.19, 1), 256, 1, 1, 0);
  EXPECT_TRUE(trace == RoutingTrace::load(*source, kMixtral));
}

// ---- bad input ------------------------------------------------------------------------------

TEST_F(TracesTest, MissingFileOrDirectory) {
  const fs::path missing = dir_ / "missing.csv";
  try {
    rmai::traces::open_csv(missing, kSmall);
    ADD_FAILURE();
  } catch (const rmai::InputError& error) {
    EXPECT_THAT(error.what(), HasSubstr(missing.string() + ": cannot open"));
  }
  try {
    rmai::traces::open_csv(dir_, kSmall);
    ADD_FAILURE();
  } catch (const rmai::InputError& error) {
    EXPECT_THAT(error.what(), HasSubstr(dir_.string() + ": is a directory"));
  }
}

TEST_F(TracesTest, BadHeaderAndFields) {
  const std::string h = kHeader;
  expect_error("empty.csv", "", 1, "empty file");
  expect_error("header.csv", "seq,token,layer,expert,weights\n" + row(0, 0, 0), 1,
               "must be exactly 'seq,token,layer,experts,weights'");
  expect_error("fields_few.csv", h + "0,0,0,0;1\n", 2, "row has 4 fields but expected 5");
  expect_error("fields_many.csv", h + token_rows(0, 0) + "0,1,0,0;1,,x\n", 6,
               "row has 6 fields but expected 5");
  expect_error("no_weights.csv", "seq,token,layer,experts\n0,0,0,0;1,\n", 2,
               "row has 5 fields but expected 4");
  expect_error("nonint_token.csv", h + token_rows(0, 0) + "0,x,0,0;1,\n", 6,
               "token 'x' is not an integer");
  expect_error("negative_seq.csv", h + "-1,0,0,0;1,\n", 2, "seq '-1' is not an integer");
  expect_error("float_layer.csv", h + "0,0,0.5,0;1,\n", 2, "layer '0.5' is not an integer");
  expect_error("nonint_expert.csv", h + "0,0,0,1;b,\n", 2, "expert 'b' is not");
}

TEST_F(TracesTest, BadExperts) {
  const std::string h = kHeader;
  expect_error("range.csv", h + row(0, 0, 0) + row(0, 0, 1, "1;9"), 3,
               "expert 9 out of range: the model has 8 experts per layer");
  expect_error("too_many.csv", h + row(0, 0, 0, "1;2;3"), 2,
               "row has 3 experts but the model routes each token to 2 (top_k)");
  expect_error("too_few.csv", h + row(0, 0, 0, "1"), 2, "row has 1 experts");
  expect_error("none.csv", h + row(0, 0, 0, ""), 2, "row has 0 experts");
  expect_error("trailing_sep.csv", h + row(0, 0, 0, "1;"), 2, "expert '' is not");
  expect_error("duplicate.csv", h + row(0, 0, 0, "3;3"), 2, "expert 3 appears twice");
  expect_error("weights_count.csv", h + row(0, 0, 0, "1;2", "0.5"), 2,
               "row has 1 weights for 2 experts");
  expect_error("weights_nan.csv", h + row(0, 0, 0, "1;2", "0.5;abc"), 2,
               "weight 'abc' is not a number");
}

TEST_F(TracesTest, BadLayersAndOrder) {
  const std::string h = kHeader;
  expect_error("layer_range.csv", h + row(0, 0, 4), 2,
               "layer 4 out of range: the model has 4 MoE layers");
  expect_error("layer_order.csv", h + row(0, 0, 0) + row(0, 0, 2), 3,
               "token 0 of sequence 0: layer 2 follows layer 0");
  expect_error("layer_start.csv", h + token_rows(0, 0) + row(0, 1, 1), 6,
               "token 1 of sequence 0 starts at layer 1");
  expect_error("missing_layers.csv", h + row(0, 5, 0) + row(0, 5, 1) + row(0, 6, 0), 4,
               "token 5 of sequence 0 has layers 0-1 but the model has 4 MoE layers");
  expect_error("truncated.csv", h + token_rows(0, 0) + row(0, 1, 0) + row(0, 1, 1) + row(0, 1, 2),
               8, "the file ends inside token 1 of sequence 0, which has layers 0-2");
  expect_error("token_order.csv", h + token_rows(0, 1) + token_rows(0, 0), 6,
               "token 0 of sequence 0 comes after token 1");
  expect_error("token_repeat.csv", h + token_rows(3, 0) + token_rows(2, 0) + token_rows(3, 0), 10,
               "token 0 of sequence 3 comes after token 0");
}

TEST_F(TracesTest, BadPhases) {
  const std::string h = kPhaseHeader;
  expect_error("value.csv", h + phased_token(0, 0, "prefill") + phased(0, 1, 0, "Prefill"), 6,
               "phase 'Prefill' is neither 'prefill' nor 'decode' (the phase column)");
  expect_error("value_later_row.csv", h + phased(0, 0, 0, "decode") + phased(0, 0, 1, "x"), 3,
               "phase 'x' is neither");
  expect_error("mixed.csv", h + phased(0, 0, 0, "prefill") + phased(0, 0, 1, "prefill") + phased(0, 0, 2, "decode"), 4,
               "token 0 of sequence 0 is decode at layer 2 but prefill at layer 0: all rows of a token have one phase");
  expect_error("mixed_empty.csv", h + phased(2, 0, 0, "prefill") + phased(2, 0, 1, ""), 3,
               "token 0 of sequence 2 is decode at layer 1 but prefill at layer 0");
  // Prefill after decode within a sequence; another sequence's prompt may come after it.
  expect_error("late.csv",
               h + phased_token(0, 0, "prefill") + phased_token(0, 1, "decode") + phased_token(1, 0, "prefill") +
                   phased_token(0, 2, "prefill"),
               14, "prefill token 2 of sequence 0 comes after its decode token 1: a sequence's prefill tokens (its "
                   "prompt) come before its first decode token");
  expect_error("late_empty.csv", h + phased_token(5, 0, "") + phased_token(5, 1, "prefill"), 6,
               "prefill token 1 of sequence 5 comes after its decode token 0");
  // The column comes after the weights column only, and with its header.
  expect_error("no_weights.csv", "seq,token,layer,experts,phase\n" + row(0, 0, 0), 1,
               "must be exactly 'seq,token,layer,experts,weights'");
  expect_error("extra_field.csv", std::string(kHeader) + "0,0,0,0;1,,prefill\n", 2,
               "row has 6 fields but expected 5");
  expect_error("missing_field.csv", h + row(0, 0, 0), 2,
               "row has 5 fields but expected 6 (seq,token,layer,experts,weights,phase)");
}

TEST_F(TracesTest, LineNumbersPastTheReadBuffer) {
  // More than the reader's 1 MiB buffer before the error, so lines span buffer refills.
  std::string content = kHeader;
  const int tokens = 30000;
  for (int t = 0; t < tokens; ++t) content += token_rows(0, t);
  ASSERT_GT(content.size(), std::size_t{1} << 20);
  expect_error("long.csv", content + row(0, tokens, 0, "1;8"), 2 + 4 * tokens,
               "expert 8 out of range");
  EXPECT_EQ(load(write("long_ok.csv", content)).tokens(), std::size_t(tokens));
}

TEST(Traces, InvalidShapesAndParams) {
  EXPECT_THROW(RoutingTrace({0, 2, 8}), std::invalid_argument);
  EXPECT_THROW(RoutingTrace({4, 9, 8}), std::invalid_argument);
  EXPECT_THROW(RoutingTrace({4, 2, 70000}), std::invalid_argument);
  EXPECT_THROW(generate_synthetic(kSmall, {10, 1, 1.5, 0}), std::invalid_argument);
  EXPECT_THROW(generate_synthetic(kSmall, {10, 1, 0.5, -1}), std::invalid_argument);
  RoutingTrace trace(kSmall);
  EXPECT_THROW(trace.append({0, 0, {1, 2}, {}}), std::invalid_argument);
}

TEST(Traces, PhasesInMemory) {
  // The first prefill token gives the trace its phases, the first token of all included.
  RoutingTrace first(kSmall);
  first.append({0, 0, std::vector<std::uint16_t>(8, 0), {}, Phase::Prefill});
  ASSERT_TRUE(first.has_phases());
  EXPECT_EQ(first.phase(0), Phase::Prefill);
  first.append({0, 1, std::vector<std::uint16_t>(8, 0), {}});
  EXPECT_EQ(first.phase(1), Phase::Decode);

  RoutingTrace later(kSmall);
  later.append({1, 0, std::vector<std::uint16_t>(8, 0), {}});
  EXPECT_FALSE(later.has_phases());
  later.append({0, 0, std::vector<std::uint16_t>(8, 0), {}, Phase::Prefill});
  ASSERT_TRUE(later.has_phases());
  EXPECT_EQ(later.phase(0), Phase::Decode);
  EXPECT_EQ(later.phase(1), Phase::Prefill);
  // Equal traces have equal phases; a trace without phases equals one whose tokens are all decode.
  RoutingTrace same(kSmall);
  same.append({1, 0, std::vector<std::uint16_t>(8, 0), {}});
  same.append({0, 0, std::vector<std::uint16_t>(8, 0), {}, Phase::Decode});
  EXPECT_FALSE(same == later);
  RoutingTrace none(kSmall);
  none.append({1, 0, std::vector<std::uint16_t>(8, 0), {}});
  none.append({0, 0, std::vector<std::uint16_t>(8, 0), {}});
  EXPECT_TRUE(same == none);
}

// ---- synthetic generator --------------------------------------------------------------------

TEST(Synthetic, Deterministic) {
  const SyntheticParams params{2000, 42, 0.37, 0.5};
  const RoutingTrace a = generate_synthetic(kMixtral, params);
  EXPECT_TRUE(a == generate_synthetic(kMixtral, params));
  EXPECT_FALSE(a == generate_synthetic(kMixtral, {2000, 43, 0.37, 0.5}));
  for (std::size_t t = 0; t < a.tokens(); ++t)
    for (std::uint32_t layer = 0; layer < kMixtral.layers; ++layer) {
      const auto experts = a.experts(t, layer);
      ASSERT_EQ(std::set<std::uint16_t>(experts.begin(), experts.end()).size(), experts.size());
    }
}

TEST(Synthetic, AdjacentReuse) {
  const TraceShape shape{8, 2, 8};
  // reuse 1 repeats the previous token; reuse 0 with uniform popularity overlaps by chance only.
  EXPECT_EQ(adjacent_reuse(generate_synthetic(shape, {20000, 3, 1.0, 0.8})), 1.0);
  EXPECT_NEAR(adjacent_reuse(generate_synthetic(shape, {20000, 3, 0.0, 0.0})),
              2.0 / 8, 0.01);
  // In general with uniform popularity: K ~ Binomial(k, r) experts are kept, the k-K others are
  // drawn from the E-K experts left, k-K of which the previous token had, so
  // E[overlap] = sum_K P(K) (K + (k-K)^2 / (E-K)) and the fraction is E[overlap] / k.
  // The standard error over 20k tokens x 8 layers is about 0.001; the tolerance is 0.01.
  const double k = 2, experts = 8;
  for (const double r : {0.2, 0.37, 0.7}) {
    double overlap = 0;
    for (int kept = 0; kept <= 2; ++kept) {
      const double p = (kept == 1 ? 2 : 1) * std::pow(r, kept) * std::pow(1 - r, 2 - kept);
      overlap += p * (kept + (k - kept) * (k - kept) / (experts - kept));
    }
    EXPECT_NEAR(adjacent_reuse(generate_synthetic(shape, {20000, 5, r, 0.0})),
                overlap / k, 0.01)
        << "reuse " << r;
  }
}

TEST(Synthetic, UniformPopularity) {
  // Exponent 0: each expert is chosen by 1/4 of 20k tokens at each layer (5000, standard
  // deviation about 61, i.e. 1.2%): allow 6% (5 sigma).
  const auto table = counts(generate_synthetic({8, 2, 8}, {20000, 11, 0.0, 0.0}));
  for (const auto& layer : table)
    for (const double count : layer) EXPECT_NEAR(count / 5000, 1.0, 0.06);
}

TEST(Synthetic, ZipfPopularity) {
  // Exponent 1.2 over 8 experts: the top expert has weight p1 = 1 / sum_r r^-1.2 (~0.43), and with
  // two draws without replacement it is chosen with probability p1 + sum_j p_j p1 / (1 - p_j);
  // its share of assignments is half that (~0.40, far above the uniform 0.125).
  const double exponent = 1.2;
  std::vector<double> p(8);
  double sum = 0;
  for (int rank = 0; rank < 8; ++rank) sum += p[rank] = std::pow(rank + 1.0, -exponent);
  for (double& weight : p) weight /= sum;
  double chosen = p[0];
  for (int j = 1; j < 8; ++j) chosen += p[j] * p[0] / (1 - p[j]);
  const double expected_share = chosen / 2;
  ASSERT_GT(expected_share, 0.35);

  const auto table =
      counts(generate_synthetic({8, 2, 8}, {20000, 13, 0.0, exponent}));
  std::set<std::size_t> top_experts;
  for (const auto& layer : table) {
    const auto top = std::max_element(layer.begin(), layer.end());
    EXPECT_NEAR(*top / 40000, expected_share, 0.015);
    top_experts.insert(top - layer.begin());
  }
  EXPECT_GE(top_experts.size(), 3u) << "the popular expert should differ by layer";
}

}  // namespace
