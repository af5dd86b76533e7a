// End-to-end tests of `rmai trace gen|stats|fit` and of generators in experiments.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "cli_support.hpp"
#include "traces/generator.hpp"
#include "traces/stats.hpp"
#include "traces/trace.hpp"

namespace {

using rmai::testing::run;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kSource = RMAI_SOURCE_DIR;

class TraceTools : public rmai::testing::TempDirTest {
 protected:
  // Runs rmai and expects success.
  rmai::testing::Result ok(const std::vector<std::string>& args) {
    auto r = run(args, dir_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r;
  }
  // Runs rmai and expects exit 2 with every part in stderr, on one line.
  void bad(const std::vector<std::string>& args, const std::vector<std::string>& parts) {
    const auto r = run(args, dir_);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    for (const auto& part : parts) EXPECT_THAT(r.err, HasSubstr(part));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
};

TEST_F(TraceTools, GenThenStatsJsonHasTheInterfaceFields) {
  ok({"trace", "gen", "--model", "mixtral-8x7b", "--generator", "mixtral-8x7b-mmlu", "--tokens", "3000", "--seed", "4",
      "-o", "t.csv"});
  const auto r = ok({"trace", "stats", "t.csv", "--model", "mixtral-8x7b", "--json"});
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"], 3000);
  EXPECT_EQ(j["layers"], 32);
  EXPECT_EQ(j["top_k"], 2);
  ASSERT_EQ(j["per_layer"].size(), 32u);
  for (const char* key : {"layer", "gini", "top_share", "adjacent_reuse"}) EXPECT_TRUE(j["per_layer"][5].contains(key));
  // The numbers are the library's on the same file.
  const rmai::traces::TraceShape shape{32, 2, 8};
  auto source = rmai::traces::open_trace(dir_ / "t.csv", shape);
  const auto s = rmai::traces::summarize(rmai::traces::RoutingCounts::of(*source, shape));
  EXPECT_DOUBLE_EQ(j["adjacent_reuse"].get<double>(), s.adjacent_reuse);
  EXPECT_DOUBLE_EQ(j["cross_layer_top1_predictability"].get<double>(), *s.cross_layer_top1_predictability);
  EXPECT_DOUBLE_EQ(j["per_layer"][5]["gini"].get<double>(), s.per_layer[5].gini);
  EXPECT_NEAR(j["adjacent_reuse"].get<double>(), 0.37, 0.03);  // what the preset was fitted to
  const auto& u = j["batch_union"];
  EXPECT_EQ(u["decode_tokens"], 3000);
  EXPECT_EQ(u["batch"], nlohmann::json({1, 4, 16, 64}));
  ASSERT_EQ(u["per_layer"].size(), 32u);
  ASSERT_EQ(u["per_layer"][5].size(), 4u);
  ASSERT_EQ(s.batch_union.size(), 4u);
  EXPECT_DOUBLE_EQ(u["mean"][2].get<double>(), s.batch_union[2].mean);
  EXPECT_DOUBLE_EQ(u["per_layer"][5][2].get<double>(), s.batch_union[2].per_layer[5]);
  EXPECT_NEAR(u["mean"][0].get<double>(), 2, 1e-12);  // one token: its top-2
  // The text report says the same.
  const auto text = ok({"trace", "stats", "t.csv"}).out;
  EXPECT_THAT(text, HasSubstr("3000 tokens in 1 sequence(s); 32 MoE layers, top-2"));
  EXPECT_THAT(text, HasSubstr("expected experts per layer in a batch of B (decode tokens drawn at random): 1: 2.00, 4: "));
}

// The expected batch union against brute force: every B-subset of a small trace's decode tokens,
// enumerated, with the union of their experts averaged per layer.
TEST(BatchUnion, MatchesEveryBatchEnumerated) {
  using rmai::traces::Phase;
  const rmai::traces::TraceShape shape{2, 2, 6};
  rmai::traces::RoutingTrace trace(shape);
  // experts[layer * 2 + k]; expert 5 only ever chosen by the prefill token, which a decode batch never takes.
  const std::vector<std::vector<std::uint16_t>> decode = {
      {0, 1, 2, 3}, {1, 0, 2, 4}, {0, 2, 3, 2}, {3, 4, 1, 0}, {0, 1, 2, 3}, {2, 0, 4, 3}, {4, 1, 0, 2}};
  // The prompt token is another sequence's, after a decode token: RoutingTrace::append drops the
  // phase of a prefill token that comes first in a trace (traces/trace.cpp, to be fixed there).
  trace.append({0, 0, decode[0], {}});
  trace.append({1, 0, {5, 0, 5, 1}, {}, Phase::Prefill});
  for (std::uint32_t t = 1; t < decode.size(); ++t) trace.append({0, t, decode[t], {}});
  ASSERT_EQ(trace.phase(1), Phase::Prefill);
  const std::vector<std::uint32_t> batches = {1, 2, 3, 4, 5, 6, 7, 9, 64};
  const auto s = rmai::traces::summarize(rmai::traces::RoutingCounts::of(trace, {}), batches);
  EXPECT_EQ(s.tokens, 8u);
  EXPECT_EQ(s.decode_tokens, 7u);
  ASSERT_EQ(s.batch_union.size(), batches.size());

  const std::uint32_t n = decode.size();
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const std::uint32_t b = std::min(batches[i], n);  // a larger batch takes every token
    for (std::uint32_t l = 0; l < shape.layers; ++l) {
      double unions = 0, subsets = 0;
      for (std::uint32_t mask = 0; mask < (1u << n); ++mask) {
        if (std::uint32_t(__builtin_popcount(mask)) != b) continue;
        std::set<std::uint16_t> experts;
        for (std::uint32_t t = 0; t < n; ++t)
          if (mask >> t & 1) experts.insert({decode[t][l * 2], decode[t][l * 2 + 1]});
        unions += double(experts.size());
        subsets += 1;
      }
      EXPECT_NEAR(s.batch_union[i].per_layer[l], unions / subsets, 1e-12) << "batch " << batches[i] << " layer " << l;
    }
  }
  EXPECT_DOUBLE_EQ(s.batch_union[0].mean, 2.0);  // B = 1: top_k, to rounding
  EXPECT_NEAR(s.batch_union.back().mean, 5.0, 1e-12);  // all decode tokens: experts 0-4 at both layers
  // Without decode tokens there is nothing to batch (counted token by token, as a file is streamed).
  rmai::traces::RoutingCounts prompt(shape, {});
  prompt.add({0, 0, {5, 0, 5, 1}, {}, Phase::Prefill});
  const auto none = rmai::traces::summarize(prompt);
  EXPECT_EQ(none.tokens, 1u);
  EXPECT_EQ(none.decode_tokens, 0u);
  for (const auto& u : none.batch_union) EXPECT_EQ(u.mean, 0);
}

// The independent check: batched decode of 16 sequences takes token j of every sequence at
// step j. The union of those 16 tokens' experts, averaged over the steps, must match the B = 16
// expectation over random decode tokens (sequences are independent, so a step is 16 independent
// draws of the routing) within 1% on the calibrated Mixtral MMLU generator; and on DeepSeek-V3's 256
// experts, where the union is far from saturating the layer and so the check is sharper.
TEST(BatchUnion, MatchesBatchedDecodeStepsOfAGeneratedTrace) {
  struct Case {
    std::string generator;
    rmai::traces::TraceShape shape;
    std::uint64_t tokens;
  };
  for (const Case& c : {Case{"mixtral-8x7b-mmlu", {32, 2, 8}, 16 * 4000}, Case{"default", {58, 8, 256}, 16 * 1000}}) {
    SCOPED_TRACE(c.generator);
    constexpr std::uint32_t kBatch = 16;
    const auto g = rmai::traces::load_generator(kSource + "/models/synthetic/" + c.generator + ".yaml", c.shape, 7);
    const auto trace = rmai::traces::generate(g, c.tokens, 7, kBatch);
    const auto s = rmai::traces::summarize(rmai::traces::RoutingCounts::of(trace, {}), {kBatch});

    const std::uint64_t steps = c.tokens / kBatch;
    std::vector<double> per_layer(c.shape.layers, 0);
    std::vector<std::uint8_t> seen(c.shape.experts);
    for (std::uint64_t j = 0; j < steps; ++j)
      for (std::uint32_t l = 0; l < c.shape.layers; ++l) {
        std::fill(seen.begin(), seen.end(), 0);
        std::uint32_t distinct = 0;
        for (std::uint32_t q = 0; q < kBatch; ++q) {
          const std::size_t t = j * kBatch + q;
          ASSERT_EQ(trace.seq(t), q);  // round-robin: token j of sequence q
          ASSERT_EQ(trace.index(t), j);
          for (const std::uint16_t e : trace.experts(t, l)) distinct += !std::exchange(seen[e], 1);
        }
        per_layer[l] += double(distinct) / double(steps);
      }
    double mean = 0;
    for (std::uint32_t l = 0; l < c.shape.layers; ++l) {
      mean += per_layer[l] / c.shape.layers;
      EXPECT_NEAR(s.batch_union[0].per_layer[l], per_layer[l], 0.02 * per_layer[l]) << "layer " << l;
    }
    std::printf("%s: mean union of %u per layer %.4f by decode steps, %.4f expected\n", c.generator.c_str(), kBatch,
                mean, s.batch_union[0].mean);
    EXPECT_NEAR(s.batch_union[0].mean, mean, 0.01 * mean);
  }
}

TEST_F(TraceTools, BinaryAndCsvGiveTheSameStats) {
  ok({"trace", "gen", "--shape", "4,2,16", "--generator", "zipf", "--tokens", "500", "-o", "t.rmtrace"});
  ok({"trace", "convert", "t.rmtrace", "-o", "t.csv"});
  const auto binary = ok({"trace", "stats", "t.rmtrace", "--json"}).out;
  EXPECT_EQ(ok({"trace", "stats", "t.csv", "--json"}).out, binary);  // shape probed from the CSV
}

TEST_F(TraceTools, GenWithPromptsWritesPrefillTokensFirst) {
  const auto r = ok({"trace", "gen", "--shape", "4,2,16", "--generator", "zipf", "--tokens", "10", "--sequences", "2",
                     "--prompt", "3", "-o", "p.rmtrace"});
  EXPECT_THAT(r.err, HasSubstr("16 tokens (6 prefill, 10 decode)"));
  const rmai::traces::TraceShape shape{4, 2, 16};
  auto source = rmai::traces::open_trace(dir_ / "p.rmtrace", shape);
  const auto trace = rmai::traces::RoutingTrace::load(*source, shape);
  ASSERT_EQ(trace.tokens(), 16u);
  for (std::size_t t = 0; t < trace.tokens(); ++t)
    EXPECT_EQ(trace.phase(t), trace.index(t) < 3 ? rmai::traces::Phase::Prefill : rmai::traces::Phase::Decode) << t;
  // Sequence 0's prompt, its first decode token, then sequence 1's.
  EXPECT_EQ(trace.seq(3), 0u);
  EXPECT_EQ(trace.index(3), 3u);
  EXPECT_EQ(trace.seq(4), 1u);
  EXPECT_EQ(trace.index(4), 0u);
  ok({"trace", "convert", "p.rmtrace", "-o", "p.csv"});
  std::ifstream csv(dir_ / "p.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "seq,token,layer,experts,weights,phase");
  // --prompt 0 is the trace without the option.
  ok({"trace", "gen", "--shape", "4,2,16", "--tokens", "10", "--sequences", "2", "--prompt", "0", "-o", "a.csv"});
  ok({"trace", "gen", "--shape", "4,2,16", "--tokens", "10", "--sequences", "2", "-o", "b.csv"});
  const auto read = [&](const char* name) {
    std::ifstream in(dir_ / name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(read("a.csv"), read("b.csv"));
  EXPECT_EQ(read("a.csv").substr(0, 32), "seq,token,layer,experts,weights\n");
}

TEST_F(TraceTools, FitThenGenRoundTrip) {
  ok({"trace", "gen", "--model", "olmoe-1b-7b", "--generator", "olmoe-1b-7b-c4", "--tokens", "3000", "-o", "real.csv"});
  ok({"trace", "fit", "real.csv", "--model", "olmoe-1b-7b", "--tokens", "3000", "-o", "fitted.yaml"});
  std::ifstream in(dir_ / "fitted.yaml");
  std::string first;
  std::getline(in, first);
  EXPECT_THAT(first, HasSubstr("# command: rmai trace fit real.csv"));
  ok({"trace", "gen", "--model", "olmoe-1b-7b", "--generator", "fitted.yaml", "--tokens", "3000", "-o", "synth.csv"});
  const auto real = nlohmann::json::parse(ok({"trace", "stats", "real.csv", "--json"}).out);
  const auto synth = nlohmann::json::parse(ok({"trace", "stats", "synth.csv", "--json"}).out);
  EXPECT_NEAR(synth["adjacent_reuse"].get<double>(), real["adjacent_reuse"].get<double>(), 0.02);
  for (int l = 0; l < 16; ++l)
    EXPECT_NEAR(synth["per_layer"][l]["top_share"].get<double>(), real["per_layer"][l]["top_share"].get<double>(), 0.03);
}

TEST_F(TraceTools, FitFromCountTablesIsUsableInAnExperiment) {
  ok({"trace", "fit", "--counts", kSource + "/models/routing/expert_counts_olmoe_repo.csv", "--where",
      "model=mixtral-8x7b", "--where", "domain=github", "--model", "mixtral-8x7b", "--reuse", "0.37", "-o",
      "gen/mixtral-github.yaml"});
  write("exp.yaml", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {generator: gen/mixtral-github.yaml}\n");
  EXPECT_THAT(ok({"check", "exp.yaml"}).out, HasSubstr("mixtral-github.yaml"));
}

TEST_F(TraceTools, BadInput) {
  write("trunc.csv", "seq,token,layer,experts,weights\n0,0,0,1;2,\n");
  write("empty.csv", "");
  write("exp.yaml", "model: mixtral-8x7b\ncache: {gpu_experts: 64}\ntrace: {generator: olmoe-1b-7b-c4}\n");
  bad({"trace", "gen", "--model", "mixtral-8x7b", "-o", "x.csv"}, {"--tokens", "positive"});
  bad({"trace", "gen", "--shape", "4,2", "--tokens", "5", "-o", "x.csv"}, {"--shape", "LAYERS,TOP_K,EXPERTS"});
  bad({"trace", "gen", "--shape", "4,9,8", "--tokens", "5", "-o", "x.csv"}, {"--shape", "top_k 9 exceeds"});
  bad({"trace", "gen", "--model", "mixtral-8x7b", "--generator", "nosuch", "--tokens", "5", "-o", "x.csv"},
      {"--generator", "unknown generator \"nosuch\""});
  bad({"trace", "gen", "--model", "mixtral-8x7b", "--generator", "olmoe-1b-7b-c4", "--tokens", "5", "-o", "x.csv"},
      {"olmoe-1b-7b-c4.yaml", "tabulated for 16 layers, top-8 of 64 experts", "32 layers, top-2 of 8"});
  bad({"trace", "gen", "--model", "mixtral-8x7b", "--tokens", "-5", "-o", "x.csv"}, {"--tokens", "'-5'"});
  bad({"trace", "gen", "--model", "mixtral-8x7b", "--tokens", "5", "--prompt", "x", "-o", "x.csv"}, {"--prompt", "'x'"});
  bad({"trace", "gen", "--model", "mixtral-8x7b", "--tokens", "5", "--sequences", "2", "--prompt", "2147483648", "-o",
       "x.csv"},
      {"--prompt", "more than 4294967295 tokens"});
  bad({"trace", "stats", "missing.csv"}, {"missing.csv", "cannot open"});
  bad({"trace", "stats", "empty.csv"}, {"empty.csv:1:", "empty"});
  bad({"trace", "stats", "trunc.csv", "--model", "mixtral-8x7b"}, {"trunc.csv:2:", "truncated"});
  bad({"trace", "stats", "trunc.csv", "--windows", "0,4"}, {"--windows"});
  bad({"trace", "stats", "trunc.csv", "--frobnicate"}, {"--frobnicate", "unknown option"});
  bad({"trace", "fit", "trunc.csv", "--model", "mixtral-8x7b", "-o", "g.yaml"}, {"trunc.csv:2:"});
  bad({"trace", "fit", "--counts", kSource + "/models/routing/expert_counts_olmoe_repo.csv", "--model",
       "mixtral-8x7b", "-o", "g.yaml"},
      {"--reuse", "required"});
  bad({"trace", "fit", "--counts", kSource + "/models/routing/expert_counts_olmoe_repo.csv", "--where", "model=olmoe-1b-7b",
       "--model", "mixtral-8x7b", "--reuse", "0.3", "-o", "g.yaml"},
      {"expert_counts_olmoe_repo.csv:10:", "expert 8 out of range"});
  bad({"trace", "fit", "--counts", kSource + "/models/routing/expert_counts_olmoe_repo.csv", "--where", "colour=red",
       "--model", "mixtral-8x7b", "--reuse", "0.3", "-o", "g.yaml"},
      {"--where colour=red", "no such column"});
  const auto unknown = run({"trace", "nonsense"}, dir_);
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown trace tool \"nonsense\""));
  bad({"check", "exp.yaml"}, {"olmoe-1b-7b-c4.yaml", "tabulated for 16 layers"});
  for (const char* name : {"x.csv", "g.yaml", "x.csv.tmp", "g.yaml.tmp"}) EXPECT_FALSE(fs::exists(dir_ / name)) << name;
}

}  // namespace
