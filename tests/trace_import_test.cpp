// Import of JSON-lines routing logs: the library (order independence, sequences, gating probs,
// round trip through the CSV, dropped tokens) and `rmai trace import` end to end, with bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "config/errors.hpp"
#include "traces/jsonl.hpp"
#include "traces/trace.hpp"

namespace fs = std::filesystem;
using rmai::traces::ImportOptions;
using rmai::traces::import_jsonl;
using rmai::traces::RoutingTrace;
using rmai::traces::TraceShape;

namespace {

struct Rec {
  std::string seq;  // JSON value of the key, e.g. "\"req-a\"" or "7"
  int token;
  int layer;
  std::string experts;       // JSON array
  std::string probs = "";    // JSON array or empty
  std::string key = "request_id";
  std::string phase = "";    // JSON value or empty (no field)
};

std::string line(const Rec& r) {
  std::string text = "{\"" + r.key + "\": " + r.seq + ", \"token_idx\": " + std::to_string(r.token) +
                     ", \"layer\": " + std::to_string(r.layer) + ", \"experts\": " + r.experts;
  if (!r.probs.empty()) text += ", \"gating_probs\": " + r.probs;
  if (!r.phase.empty()) text += ", \"phase\": " + r.phase;
  return text + "}\n";
}

std::string lines(const std::vector<Rec>& records) {
  std::string text;
  for (const auto& r : records) text += line(r);
  return text;
}

// Experts of a token at a layer, deterministic and distinct: what a small 3-layer, top-2, 8-expert
// model could route.
std::string experts_of(int token, int layer) {
  const int a = (token * 3 + layer) % 8;
  const int b = (a + 1 + layer % 7) % 8;
  return "[" + std::to_string(a) + ", " + std::to_string(b) + "]";
}

// Tokens 0..tokens-1 of one sequence, layers `layer_ids`, layer-major or token-major.
std::vector<Rec> records(const std::string& seq, int tokens, const std::vector<int>& layer_ids,
                         bool layer_major) {
  std::vector<Rec> out;
  const int layers = static_cast<int>(layer_ids.size());
  for (int outer = 0; outer < (layer_major ? layers : tokens); ++outer)
    for (int inner = 0; inner < (layer_major ? tokens : layers); ++inner) {
      const int t = layer_major ? inner : outer;
      const int l = layer_major ? outer : inner;
      out.push_back({seq, t, layer_ids[l], experts_of(t, l)});
    }
  return out;
}

std::string csv_of(const RoutingTrace& trace) {
  std::ostringstream out;
  rmai::traces::write_csv(trace, out);
  return out.str();
}

class ImportTest : public rmai::testing::TempDirTest {};

TEST_F(ImportTest, LayerMajorAndTokenMajorGiveTheSameTrace) {
  const std::vector<int> ids{0, 1, 2};
  const auto layer_major = import_jsonl(write("lm.jsonl", lines(records("\"a\"", 5, ids, true))));
  const auto token_major = import_jsonl(write("tm.jsonl", lines(records("\"a\"", 5, ids, false))));
  EXPECT_TRUE(layer_major.trace == token_major.trace);
  const RoutingTrace& t = layer_major.trace;
  EXPECT_EQ(t.shape(), (TraceShape{3, 2, 8}));
  ASSERT_EQ(t.tokens(), 5u);
  for (std::size_t i = 0; i < t.tokens(); ++i) {
    EXPECT_EQ(t.seq(i), 0u);
    EXPECT_EQ(t.index(i), i);
  }
  // Experts keep the record's order (rank order), not sorted: token 2, layer 2 is [0, 3].
  EXPECT_EQ(std::vector<std::uint16_t>(t.experts(2, 2).begin(), t.experts(2, 2).end()),
            (std::vector<std::uint16_t>{0, 3}));
  EXPECT_FALSE(t.has_weights());
  EXPECT_EQ(layer_major.report.tokens_kept, 5u);
  EXPECT_EQ(layer_major.report.tokens_dropped, 0u);
  EXPECT_EQ(layer_major.report.records, 15u);
}

TEST_F(ImportTest, SeveralSequencesWithStringAndIntegerKeysInOrderOfFirstAppearance) {
  // Interleaved like a batched decode log: "b" appears first, then 42, then "42" (a different key
  // from the integer 42); tokens come out of order.
  const std::vector<int> ids{0, 1};
  std::vector<Rec> recs;
  for (int t : {3, 1, 2})
    for (const std::string seq : {"\"b\"", "42", "\"42\""})
      for (int l : {1, 0}) recs.push_back({seq, t, ids[l], experts_of(t, l)});
  const auto result = import_jsonl(write("seqs.jsonl", lines(recs)));
  const RoutingTrace& t = result.trace;
  ASSERT_EQ(t.tokens(), 9u);
  const std::vector<std::uint32_t> seqs{0, 0, 0, 1, 1, 1, 2, 2, 2};
  const std::vector<std::uint32_t> indices{1, 2, 3, 1, 2, 3, 1, 2, 3};
  for (std::size_t i = 0; i < t.tokens(); ++i) {
    EXPECT_EQ(t.seq(i), seqs[i]) << i;
    EXPECT_EQ(t.index(i), indices[i]) << i;
  }
  EXPECT_EQ(result.report.sequences, (std::vector<std::string>{"\"b\"", "42", "\"42\""}));
  EXPECT_EQ(result.report.sequence_field, "request_id");
}

TEST_F(ImportTest, ProblemIdAndSeqKeysAndAbsoluteLayerIdsMapInOrder) {
  // DeepSeek-style logs number absolute layers and skip dense ones: ids 1, 3, 7 are MoE layers 0-2.
  for (const std::string key : {"problem_id", "seq"}) {
    std::vector<Rec> recs;
    for (int l : {7, 1, 3}) recs.push_back({"0", 0, l, "[" + std::to_string(l) + ", 0]", "", key});
    const auto result = import_jsonl(write(key + ".jsonl", lines(recs)));
    EXPECT_EQ(result.report.layer_ids, (std::vector<std::uint32_t>{1, 3, 7}));
    EXPECT_EQ(result.report.sequence_field, key);
    EXPECT_EQ(csv_of(result.trace),
              "seq,token,layer,experts,weights\n0,0,0,1;0,\n0,0,1,3;0,\n0,0,2,7;0,\n");
  }
}

TEST_F(ImportTest, GatingProbsAreKeptAndWrittenToTheCsv) {
  const std::vector<Rec> recs{
      {"\"r\"", 0, 1, "[5, 2]", "[0.75, 0.25]"},
      {"\"r\"", 0, 0, "[1, 4]", "[0.6, 0.4]"},
      {"\"r\"", 1, 0, "[3, 0]"},  // a record without probs stays without
      {"\"r\"", 1, 1, "[2, 6]", "[1, 0]"},
  };
  const auto result = import_jsonl(write("probs.jsonl", lines(recs)));
  EXPECT_TRUE(result.trace.has_weights());
  EXPECT_TRUE(result.report.gating_probs);
  EXPECT_FLOAT_EQ(result.trace.weights(0, 1)[0], 0.75f);
  EXPECT_TRUE(std::isnan(result.trace.weights(1, 0)[0]));
  EXPECT_EQ(csv_of(result.trace),
            "seq,token,layer,experts,weights\n"
            "0,0,0,1;4,0.6;0.4\n"
            "0,0,1,5;2,0.75;0.25\n"
            "0,1,0,3;0,\n"
            "0,1,1,2;6,1;0\n");
}

TEST_F(ImportTest, PhasesAreKeptAndWrittenToTheCsv) {
  // Two sequences, layer-major; "a" has a prompt of tokens 0-1, "b" of token 0; a missing or null
  // phase is decode.
  std::vector<Rec> log;
  for (int layer = 0; layer < 2; ++layer) {
    log.push_back({"\"a\"", 2, layer, experts_of(2, layer), "", "request_id", layer == 0 ? "null" : ""});
    log.push_back({"\"b\"", 0, layer, experts_of(0, layer), "", "request_id", "\"prefill\""});
    log.push_back({"\"a\"", 0, layer, experts_of(0, layer), "", "request_id", "\"prefill\""});
    log.push_back({"\"a\"", 1, layer, experts_of(1, layer), "", "request_id", "\"prefill\""});
    log.push_back({"\"b\"", 1, layer, experts_of(1, layer), "", "request_id", "\"decode\""});
  }
  const auto result = import_jsonl(write("phases.jsonl", lines(log)));
  const RoutingTrace& t = result.trace;
  ASSERT_EQ(t.tokens(), 5u);
  ASSERT_TRUE(t.has_phases());
  using rmai::traces::Phase;
  const Phase expected[] = {Phase::Prefill, Phase::Prefill, Phase::Decode, Phase::Prefill, Phase::Decode};
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(t.phase(i), expected[i]) << i;
  const std::string csv = csv_of(t);
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "seq,token,layer,experts,weights,phase");
  auto source = rmai::traces::open_csv(write("phases.csv", csv), t.shape());
  EXPECT_TRUE(RoutingTrace::load(*source, t.shape()) == t);

  // A log without the field has no phases, and its CSV is as before.
  const auto plain = import_jsonl(write("plain.jsonl", lines(records("\"a\"", 3, {0, 1}, true))));
  EXPECT_FALSE(plain.trace.has_phases());
  EXPECT_EQ(csv_of(plain.trace).substr(0, 32), "seq,token,layer,experts,weights\n");
}

TEST_F(ImportTest, ImportThenCsvThenOpenCsvGivesTheSameTrace) {
  std::vector<Rec> recs = records("\"x\"", 6, {0, 1, 2}, false);
  const std::vector<Rec> more = records("9", 4, {0, 1, 2}, true);
  recs.insert(recs.end(), more.begin(), more.end());
  for (std::size_t i = 0; i < recs.size(); i += 2) recs[i].probs = "[0.123456789, 0.000001]";
  const auto imported = import_jsonl(write("rt.jsonl", lines(recs)));
  const fs::path csv = write("rt.csv", csv_of(imported.trace));
  const auto source = rmai::traces::open_csv(csv, imported.trace.shape());
  const RoutingTrace loaded = RoutingTrace::load(*source, imported.trace.shape());
  EXPECT_TRUE(loaded == imported.trace);
  EXPECT_EQ(loaded.tokens(), 10u);
}

TEST_F(ImportTest, TokensWithMissingLayersAreReportedAndDropped) {
  std::vector<Rec> recs = records("\"s\"", 4, {0, 1, 2}, true);
  // Token 1 loses layer 2 and token 3 loses layers 0 and 1; token 7 has layer 0 only.
  std::erase_if(recs, [](const Rec& r) {
    return (r.token == 1 && r.layer == 2) || (r.token == 3 && r.layer < 2);
  });
  recs.push_back({"\"s\"", 7, 0, "[1, 2]"});
  const auto result = import_jsonl(write("gaps.jsonl", lines(recs)));
  EXPECT_EQ(result.report.tokens_kept, 2u);
  EXPECT_EQ(result.report.tokens_dropped, 3u);
  ASSERT_EQ(result.report.first_dropped.size(), 3u);
  EXPECT_EQ(result.report.first_dropped[0].token_idx, 1u);
  EXPECT_EQ(result.report.first_dropped[0].layers, 2u);
  EXPECT_EQ(result.report.first_dropped[0].sequence, "\"s\"");
  EXPECT_EQ(result.report.first_dropped[1].token_idx, 3u);
  EXPECT_EQ(result.report.first_dropped[2].token_idx, 7u);
  ASSERT_EQ(result.trace.tokens(), 2u);
  EXPECT_EQ(result.trace.index(0), 0u);
  EXPECT_EQ(result.trace.index(1), 2u);
}

TEST_F(ImportTest, ModelShapeIsUsedAsGiven) {
  // With the shape of a model, experts = the model's even if the log uses fewer.
  ImportOptions options;
  options.shape = TraceShape{3, 2, 16};
  options.layer_id_limit = 4;
  options.model = "small";
  const auto result = import_jsonl(write("m.jsonl", lines(records("1", 2, {1, 2, 3}, true))), options);
  EXPECT_EQ(result.trace.shape(), (TraceShape{3, 2, 16}));
  options.layer_id_limit = 3;  // layer 3 is now beyond the model
  EXPECT_THROW(import_jsonl(dir_ / "m.jsonl", options), rmai::InputError);
}

TEST_F(ImportTest, BlankLinesCrlfAndAMissingFinalNewlineAreFine) {
  std::string text = lines(records("\"a\"", 2, {0, 1}, true));
  std::string crlf;
  for (char c : text) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  crlf = "\n" + crlf + "\n  \n";
  crlf.pop_back();  // ends with a blank line without newline
  const auto a = import_jsonl(write("crlf.jsonl", crlf));
  text.pop_back();  // last record without newline
  const auto b = import_jsonl(write("nonl.jsonl", text));
  EXPECT_TRUE(a.trace == b.trace);
  EXPECT_EQ(a.trace.tokens(), 2u);
}

TEST_F(ImportTest, LinesAcrossTheReadBufferAndLongerThanIt) {
  // The reader fills 1 MiB blocks: records straddle block ends, and one line (with a field the
  // importer ignores) is longer than a block.
  std::string text;
  std::vector<Rec> recs = records("\"a\"", 40000, {0, 1}, true);
  for (std::size_t i = 0; i < recs.size(); ++i) {
    if (i == 12345) {
      std::string big = line(recs[i]);
      big.insert(1, "\"note\": \"" + std::string(1500000, 'x') + "\", ");
      text += big;
    } else {
      text += line(recs[i]);
    }
  }
  const auto result = import_jsonl(write("long.jsonl", text));
  ASSERT_GT(text.size(), std::size_t{3} << 20);
  EXPECT_EQ(result.report.records, 80000u);
  ASSERT_EQ(result.trace.tokens(), 40000u);
  EXPECT_EQ(result.trace.index(39999), 39999u);
}

// ---- rmai trace import end to end ----

using rmai::testing::Result;
using rmai::testing::run;

TEST_F(ImportTest, CliWritesTheCsvAndReports) {
  const fs::path log = write("log.jsonl", lines(records("\"a\"", 3, {0, 1}, false)) +
                                              line({"\"a\"", 9, 1, "[1, 2]"}));
  const fs::path out = dir_ / "out.csv";
  const Result r = run({"trace", "import", "--format", "jsonl", log.string(), "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("imported 3 tokens of 1 sequence (key request_id)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("dropped 1 token"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("token 9 of sequence \"a\""), std::string::npos) << r.err;
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), csv_of(import_jsonl(log).trace));
}

TEST_F(ImportTest, CliWithModelUsesTheModelsShape) {
  std::vector<int> ids(32);
  for (int l = 0; l < 32; ++l) ids[l] = l;
  const fs::path log = write("mix.jsonl", lines(records("1", 2, ids, true)));
  const fs::path out = dir_ / "mix.csv";
  const Result r = run({"trace", "import", "--format=jsonl", log.string(), "--out", out.string(),
                        "--model", "mixtral-8x7b"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("32 MoE layers, top_k 2, 8 experts"), std::string::npos) << r.err;
  const auto source = rmai::traces::open_csv(out, TraceShape{32, 2, 8});
  EXPECT_EQ(RoutingTrace::load(*source, TraceShape{32, 2, 8}).tokens(), 2u);
}

TEST_F(ImportTest, ImportCsvBinaryCsvIsByteIdentical) {
  // The round trip, through the CLI: two sequences, gate weights on some records.
  std::vector<Rec> log = records("\"req-b\"", 4, {0, 1, 2}, true);
  for (auto& r : records("17", 3, {0, 1, 2}, false)) {
    r.probs = "[0.7312, 0.2688]";
    log.push_back(r);
  }
  const fs::path jsonl = write("log.jsonl", lines(log));
  const auto read = [](const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  ASSERT_EQ(run({"trace", "import", "--format", "jsonl", jsonl.string(), "-o", "a.csv"}, dir_).exit_code, 0);
  ASSERT_EQ(run({"trace", "convert", "a.csv", "-o", "b.rmtrace"}, dir_).exit_code, 0);
  ASSERT_EQ(run({"trace", "convert", "b.rmtrace", "-o", "c.csv"}, dir_).exit_code, 0);
  const std::string imported = read(dir_ / "a.csv");
  EXPECT_NE(imported.find("0.7312;0.2688"), std::string::npos) << imported;
  EXPECT_EQ(read(dir_ / "c.csv"), imported);
}

TEST_F(ImportTest, CliWithModelAcceptsAbsoluteOrMoeOnlyLayerIds) {
  // DeepSeek-V2-Lite: 27 layers, layer 0 dense. A log may number MoE layers 1..26 (absolute) or
  // 0..25 (MoE layers alone); 0..24 plus 26 is neither and names both numberings.
  const auto import = [&](const std::vector<int>& ids) {
    std::string text;
    for (std::size_t i = 0; i < ids.size(); ++i)
      text += line({"0", 0, ids[i], "[" + std::to_string(i) + ", 40, 41, 42, 43, 44]"});
    const fs::path log = write("v2.jsonl", text);
    return run({"trace", "import", "--format", "jsonl", log.string(), "-o", (dir_ / "v2.csv").string(), "--model",
                "deepseek-v2-lite"});
  };
  std::vector<int> absolute(26), moe_only(26);
  for (int i = 0; i < 26; ++i) absolute[i] = i + 1, moe_only[i] = i;
  EXPECT_EQ(import(absolute).exit_code, 0);
  EXPECT_EQ(import(moe_only).exit_code, 0);
  std::vector<int> neither = moe_only;
  neither.back() = 26;
  fs::remove(dir_ / "v2.csv");
  const Result r = import(neither);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("neither deepseek-v2-lite's MoE layers (1-26) nor 0-25"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "v2.csv"));
}

// Bad input: exit 2, one line "rmai: error: FILE:LINE: ...", and no output file afterwards.
struct BadCase {
  std::string name;
  std::string content;
  int line;                            // expected in "FILE:LINE:"; 0: only "FILE:"
  std::vector<std::string> expected;   // substrings of the message
  std::vector<std::string> extra = {};  // more arguments
};

const std::string kOk = "{\"seq\": 0, \"token_idx\": 0, \"layer\": 0, \"experts\": [1, 2]}\n";
const std::string kOk1 = "{\"seq\": 0, \"token_idx\": 0, \"layer\": 1, \"experts\": [1, 2]}\n";

std::vector<BadCase> bad_cases() {
  const auto rec = [](const std::string& fields) { return "{" + fields + "}\n"; };
  const std::string base = "\"seq\": 0, \"token_idx\": 0, \"layer\": 1";
  return {
      {"malformed_json", kOk + "{\"seq\": 0, \"token_idx\": 0 \"layer\": 1, \"experts\": [1, 2]}\n", 2,
       {"malformed JSON", "column"}},
      {"not_an_object", kOk + "[0, 0, 1, [1, 2]]\n", 2, {"JSON object", "array"}},
      {"missing_layer", kOk + rec("\"seq\": 0, \"token_idx\": 0, \"experts\": [1, 2]"), 2,
       {"missing field \"layer\""}},
      {"missing_experts", kOk + rec(base), 2, {"missing field \"experts\""}},
      {"missing_token_idx", kOk + rec("\"seq\": 0, \"layer\": 1, \"experts\": [1, 2]"), 2,
       {"missing field \"token_idx\""}},
      {"missing_sequence_key", kOk + rec("\"token_idx\": 0, \"layer\": 1, \"experts\": [1, 2]"), 2,
       {"sequence key", "problem_id", "request_id", "seq"}},
      {"layer_is_a_string", kOk + rec("\"seq\": 0, \"token_idx\": 0, \"layer\": \"1\", \"experts\": [1, 2]"),
       2, {"layer must be a non-negative integer", "found string \"1\""}},
      {"layer_is_a_float", kOk + rec("\"seq\": 0, \"token_idx\": 0, \"layer\": 1.5, \"experts\": [1, 2]"),
       2, {"layer must be a non-negative integer", "found number 1.5"}},
      {"token_idx_is_null", kOk + rec("\"seq\": 0, \"token_idx\": null, \"layer\": 1, \"experts\": [1, 2]"),
       2, {"token_idx must be a non-negative integer", "found null"}},
      {"experts_not_an_array", kOk + rec(base + ", \"experts\": 3"), 2,
       {"experts must be an array", "found number 3"}},
      {"expert_is_a_string", kOk + rec(base + ", \"experts\": [1, \"2\"]"), 2,
       {"experts[1] must be a non-negative integer", "string"}},
      {"sequence_key_is_a_float", rec("\"seq\": 0.5, \"token_idx\": 0, \"layer\": 0, \"experts\": [1, 2]"),
       1, {"seq must be a string or an integer", "number 0.5"}},
      {"sequence_key_is_an_object",
       rec("\"problem_id\": {\"a\": 1}, \"token_idx\": 0, \"layer\": 0, \"experts\": [1, 2]"), 1,
       {"problem_id must be a string or an integer", "object"}},
      {"mixed_sequence_keys", kOk + rec("\"request_id\": 0, \"token_idx\": 0, \"layer\": 1, \"experts\": [1, 2]"),
       2, {"\"request_id\"", "line 1 uses \"seq\""}},
      {"duplicate_key", kOk + rec(base + ", \"experts\": [1, 2], \"layer\": 0"), 2,
       {"key \"layer\" appears twice"}},
      {"empty_experts", kOk + rec(base + ", \"experts\": []"), 2, {"experts is empty"}},
      {"duplicate_expert", kOk + rec(base + ", \"experts\": [2, 2]"), 2, {"expert 2 appears twice"}},
      {"probs_length", kOk + rec(base + ", \"experts\": [1, 2], \"gating_probs\": [0.5]"), 2,
       {"gating_probs has 1 values for 2 experts"}},
      {"probs_non_numeric", kOk + rec(base + ", \"experts\": [1, 2], \"gating_probs\": [0.5, \"x\"]"), 2,
       {"gating_probs[1] must be a number", "string \"x\""}},
      {"probs_not_an_array", kOk + rec(base + ", \"experts\": [1, 2], \"gating_probs\": 0.5"), 2,
       {"gating_probs must be an array"}},
      {"probs_overflow_float", kOk + rec(base + ", \"experts\": [1, 2], \"gating_probs\": [1e300, 0]"), 2,
       {"gating_probs[0]", "finite"}},
      {"negative_expert", kOk + rec(base + ", \"experts\": [1, -2]"), 2, {"experts[1] is negative: -2"}},
      {"expert_beyond_16_bits", kOk + rec(base + ", \"experts\": [1, 65536]"), 2,
       {"expert 65536 out of range", "0..65535"}},
      {"expert_beyond_model", kOk + rec(base + ", \"experts\": [1, 8]"), 2,
       {"expert 8 out of range", "mixtral-8x7b has 8 experts"}, {"--model", "mixtral-8x7b"}},
      {"negative_layer", kOk + rec("\"seq\": 0, \"token_idx\": 0, \"layer\": -1, \"experts\": [1, 2]"), 2,
       {"layer is negative: -1"}},
      {"layer_beyond_model", kOk + rec("\"seq\": 0, \"token_idx\": 0, \"layer\": 32, \"experts\": [1, 2]"), 2,
       {"layer 32 out of range", "mixtral-8x7b has 32 layers"}, {"--model", "mixtral-8x7b"}},
      {"layer_beyond_32_bits", kOk + rec("\"seq\": 0, \"token_idx\": 0, \"layer\": 4294967296, \"experts\": [1, 2]"),
       2, {"layer 4294967296 out of range"}},
      {"negative_token_idx", kOk + rec("\"seq\": 0, \"token_idx\": -4, \"layer\": 1, \"experts\": [1, 2]"), 2,
       {"token_idx is negative"}},
      {"duplicate_record", kOk + kOk1 + "\n" + rec("\"seq\": 0, \"token_idx\": 0, \"layer\": 1, \"experts\": [3, 4]"),
       4, {"duplicate record", "token 0 of sequence 0 at layer 1", "also on line 2"}},
      {"top_k_differs", kOk + rec(base + ", \"experts\": [1, 2, 3]"), 2,
       {"3 experts but line 1 has 2", "top_k"}},
      {"top_k_differs_from_model", rec("\"seq\": 0, \"token_idx\": 0, \"layer\": 0, \"experts\": [1, 2, 3]"),
       1, {"3 experts but mixtral-8x7b routes each token to 2"}, {"--model", "mixtral-8x7b"}},
      {"truncated_last_line", kOk + "{\"seq\": 0, \"token_idx\": 0, \"layer\": 1, \"exp", 2,
       {"last line is incomplete", "truncated"}},
      {"empty_file", "", 1, {"empty file"}},
      {"no_records", "\n  \n\n", 1, {"no records"}},
      {"layer_count_differs_from_model", kOk + kOk1, 0, {"2 distinct layers (0-1)", "32 MoE layers"},
       {"--model", "mixtral-8x7b"}},
      {"phase_unknown", kOk + rec(base + ", \"experts\": [1, 2], \"phase\": \"Prefill\""), 2,
       {"phase must be \"prefill\" or \"decode\"", "found string \"Prefill\""}},
      {"phase_not_a_string", kOk + rec(base + ", \"experts\": [1, 2], \"phase\": 1"), 2,
       {"phase must be \"prefill\" or \"decode\"", "found number 1"}},
      {"phase_differs_within_a_token", kOk + rec(base + ", \"experts\": [1, 2], \"phase\": \"prefill\""), 2,
       {"token 0 of sequence 0 is prefill here but decode on line 1", "all records of a token have one phase"}},
      {"prefill_after_decode",
       rec("\"seq\": 0, \"token_idx\": 0, \"layer\": 0, \"experts\": [1, 2]") + "\n" +
           rec("\"seq\": 1, \"token_idx\": 3, \"layer\": 0, \"experts\": [1, 2], \"phase\": \"prefill\"") +
           rec("\"seq\": 0, \"token_idx\": 1, \"layer\": 0, \"experts\": [1, 2], \"phase\": \"prefill\""),
       4, {"prefill token 1 of sequence 0 comes after its decode token 0 (line 1)", "before its first decode token"}},
      {"every_token_incomplete",
       kOk + rec("\"seq\": 0, \"token_idx\": 1, \"layer\": 1, \"experts\": [1, 2]"), 0,
       {"no complete token", "2 layers"}},
  };
}

class ImportBadInputTest : public rmai::testing::TempDirTest,
                           public ::testing::WithParamInterface<BadCase> {};

TEST_P(ImportBadInputTest, ExitsWithCode2AndNamesFileAndLine) {
  const BadCase& c = GetParam();
  const fs::path log = write("in.jsonl", c.content);
  const fs::path out = dir_ / "out.csv";
  std::vector<std::string> args{"trace", "import", "--format", "jsonl", log.string(), "-o", out.string()};
  args.insert(args.end(), c.extra.begin(), c.extra.end());
  const Result r = run(args);
  const std::string context = "stderr:\n" + r.err;
  EXPECT_FALSE(r.signaled) << context;
  EXPECT_EQ(r.exit_code, 2) << context;
  const std::string where = log.string() + (c.line > 0 ? ":" + std::to_string(c.line) + ": " : ": ");
  EXPECT_EQ(r.err.rfind("rmai: error: " + where, 0), 0u) << "expected " << where << "\n" << context;
  for (const auto& text : c.expected)
    EXPECT_NE(r.err.find(text), std::string::npos) << "stderr lacks \"" << text << "\"\n" << context;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line of error\n" << context;
  // Nothing written: the directory holds the log only (no output, no temporary file).
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir_)) files.push_back(entry.path().filename());
  EXPECT_EQ(files, std::vector<std::string>{"in.jsonl"}) << context;
}

INSTANTIATE_TEST_SUITE_P(Import, ImportBadInputTest, ::testing::ValuesIn(bad_cases()),
                         [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

// Bad command lines: exit 2 with a message naming the option, nothing written.
TEST_F(ImportTest, BadCommandLines) {
  const fs::path log = write("ok.jsonl", kOk);
  const std::string out = (dir_ / "out.csv").string();
  const struct {
    std::vector<std::string> args;
    std::string expected;
  } cases[] = {
      {{"--format", "csv", log.string(), "-o", out}, "unknown format \"csv\" (supported formats: jsonl)"},
      {{log.string(), "-o", out}, "--format: required (supported formats: jsonl)"},
      {{"--format", "jsonl", log.string()}, "-o: the output trace is required"},
      {{"--format", "jsonl", "-o", out}, "no log file given"},
      {{"--format", "jsonl", log.string(), "-o", out, "--model", "mixtral-9x7b"},
       "--model: unknown model \"mixtral-9x7b\""},
      {{"--format", "jsonl", log.string(), "-o", out, "--frobnicate"}, "--frobnicate: unknown option"},
      {{"--format", "jsonl", log.string(), "-o"}, "-o: needs a value"},
      {{"--format", "jsonl", (dir_ / "missing.jsonl").string(), "-o", out}, "missing.jsonl: cannot open"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"trace", "import"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const Result r = run(args);
    EXPECT_EQ(r.exit_code, 2) << c.expected << "\n" << r.err;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << c.expected << "\n" << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.expected;
  }
}

}  // namespace
