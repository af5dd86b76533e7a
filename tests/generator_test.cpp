// Tests of the routing generator, the statistics and the fit.
//
// Stated tolerances (on 100k generated tokens unless said otherwise):
//   per-layer popularity: total variation distance < 0.05 from the target;
//   adjacent reuse: within 0.02 of the target, per layer;
//   cross-layer dependence: mutual information within 15% (and top-1 predictability within 0.03).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "config/tree.hpp"
#include "config/errors.hpp"
#include "traces/fit.hpp"
#include "traces/generator.hpp"
#include "spec/experiment.hpp"
#include "traces/stats.hpp"

namespace fs = std::filesystem;
using namespace rmai::traces;
using ::testing::HasSubstr;

namespace {

constexpr TraceShape kMixtral{32, 2, 8};
constexpr TraceShape kOlmoe{16, 8, 64};
constexpr std::uint64_t kTokens = 100000;
const fs::path kSource(RMAI_SOURCE_DIR);

RoutingTrace trace_of(TraceShape shape, std::uint32_t seq, const std::vector<std::vector<std::uint16_t>>& tokens) {
  RoutingTrace trace(shape);
  for (std::uint32_t t = 0; t < tokens.size(); ++t) trace.append({seq, t, tokens[t], {}});
  return trace;
}

// (rank-i at `from`, rank-i at `to`) counts, the quantity the pair tables hold.
Eigen::MatrixXd rank_pairs(const RoutingTrace& trace, std::uint32_t from, std::uint32_t to) {
  Eigen::MatrixXd pairs = Eigen::MatrixXd::Zero(trace.shape().experts, trace.shape().experts);
  for (std::size_t t = 0; t < trace.tokens(); ++t)
    for (std::size_t i = 0; i < trace.shape().top_k; ++i) pairs(trace.experts(t, from)[i], trace.experts(t, to)[i]) += 1;
  return pairs;
}

class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    path_ = fs::temp_directory_path() / ("rmai-generator-test-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".yaml");
    std::ofstream(path_) << text;
  }
  ~TempFile() { fs::remove(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// ---- statistics on traces small enough to work out by hand --------------------------------------

TEST(Stats, HandComputed) {
  // 2 layers, top-2 of 4 experts, one sequence of 3 tokens.
  const auto trace = trace_of({2, 2, 4}, 0, {{0, 1, 2, 3}, {0, 2, 2, 1}, {3, 2, 0, 1}});
  const auto s = summarize(RoutingCounts::of(trace, {2}));
  EXPECT_EQ(s.tokens, 3u);
  EXPECT_EQ(s.sequences, 1u);
  // Layer 0 assignments: e0 x2, e1 x1, e2 x2, e3 x1 (of 6).
  EXPECT_NEAR(s.per_layer[0].top_share, 2.0 / 6, 1e-12);
  EXPECT_NEAR(s.per_layer[0].popularity[1], 1.0 / 6, 1e-12);
  // Gini of (1, 1, 2, 2): sum over ordered pairs of |xi - xj| / (2 n^2 mean) = 8 / (2 * 16 * 1.5) = 1/6.
  EXPECT_NEAR(s.per_layer[0].gini, 1.0 / 6, 1e-12);
  // Reuse at layer 0: t1 {0,2} vs t0 {0,1}: 1/2; t2 {3,2} vs t1 {0,2}: 1/2. Layer 1: t1 {2,1} vs
  // {2,3}: 1/2; t2 {0,1} vs {2,1}: 1/2.
  EXPECT_NEAR(s.adjacent_reuse, 0.5, 1e-12);
  // Top-1 pairs layer 0 -> 1: (0,2), (0,2), (3,0): predictability (2 + 1) / 3 = 1.
  EXPECT_NEAR(*s.cross_layer_top1_predictability, 1.0, 1e-12);
  // Plug-in MI = H(top-1 at layer 1) since it is a function of layer 0's: H(2/3, 1/3), less the
  // Miller-Madow correction (2 - 1)(2 - 1) / (2 * 3 pairs) nats.
  const double h = -(2.0 / 3) * std::log2(2.0 / 3) - (1.0 / 3) * std::log2(1.0 / 3);
  EXPECT_NEAR(*s.cross_layer_mutual_information_bits, h - 1 / (6 * std::log(2.0)), 1e-12);
  // Windows of 2 tokens: one complete window (t0, t1): layer 0 {0,1,2}, layer 1 {2,3,1} -> 3 per layer.
  ASSERT_EQ(s.working_set.size(), 1u);
  EXPECT_NEAR(s.working_set[0].experts_per_layer, 3.0, 1e-12);
}

TEST(Stats, ReuseIsPerSequence) {
  // Interleaved sequences: a token is compared with the previous token of its own sequence.
  RoutingTrace trace({1, 1, 4});
  trace.append({0, 0, {1}, {}});
  trace.append({1, 0, {2}, {}});
  trace.append({0, 1, {1}, {}});
  trace.append({1, 1, {3}, {}});
  const auto s = summarize(RoutingCounts::of(trace));
  EXPECT_EQ(s.sequences, 2u);
  EXPECT_NEAR(s.adjacent_reuse, 0.5, 1e-12);  // seq 0 repeats, seq 1 does not
  EXPECT_FALSE(s.cross_layer_top1_predictability.has_value());  // one layer: nothing to predict
}

TEST(Stats, GiniAndDistance) {
  EXPECT_DOUBLE_EQ(gini(Eigen::Vector4d(5, 5, 5, 5)), 0.0);
  EXPECT_NEAR(gini(Eigen::Vector4d(0, 0, 0, 8)), 0.75, 1e-12);  // (n - 1) / n for one holder
  EXPECT_NEAR(total_variation(Eigen::Vector2d(1, 0), Eigen::Vector2d(0, 3)), 1.0, 1e-12);
  EXPECT_NEAR(total_variation(Eigen::Vector2d(1, 1), Eigen::Vector2d(3, 1)), 0.25, 1e-12);
}

// ---- the generator ----------------------------------------------------------------------------

TEST(Generator, DeterministicDistinctAndSeeded) {
  const auto g = zipf_generator(kMixtral, 0.5, 0.3, 7);
  const auto a = generate(g, 2000, 42);
  EXPECT_TRUE(a == generate(g, 2000, 42));
  EXPECT_FALSE(a == generate(g, 2000, 43));
  for (std::size_t t = 0; t < a.tokens(); ++t)
    for (std::uint32_t l = 0; l < kMixtral.layers; ++l) {
      const auto e = a.experts(t, l);
      ASSERT_EQ(std::set<std::uint16_t>(e.begin(), e.end()).size(), e.size());
    }
}

TEST(Generator, BatchedSequencesInterleave) {
  // Reuse 1 repeats each sequence's own previous token: with 3 interleaved sequences token t equals
  // token t - 3, and the statistics see reuse 1 within each sequence.
  const auto trace = generate(zipf_generator({2, 2, 8}, 0, 1.0, 1), 30, 8, 3);
  for (std::size_t t = 0; t < trace.tokens(); ++t) {
    EXPECT_EQ(trace.seq(t), t % 3);
    EXPECT_EQ(trace.index(t), t / 3);
    for (std::uint32_t l = 0; t >= 3 && l < 2; ++l)
      EXPECT_TRUE(std::ranges::equal(trace.experts(t, l), trace.experts(t - 3, l))) << t;
  }
  const auto s = summarize(RoutingCounts::of(trace));
  EXPECT_EQ(s.sequences, 3u);
  EXPECT_DOUBLE_EQ(s.adjacent_reuse, 1.0);
  // One sequence is the same stream as before batching existed (the shipped samples rely on it).
  EXPECT_TRUE(generate(zipf_generator({2, 2, 8}, 0.5, 0.3, 1), 50, 8) ==
              generate(zipf_generator({2, 2, 8}, 0.5, 0.3, 1), 50, 8, 1));
}

TEST(Generator, PromptZeroIsTheStreamWithoutPrompts) {
  // Bit for bit, whatever the batch (the golden regression and the shipped samples rely on it).
  const auto g = zipf_generator({3, 2, 8}, 0.7, 0.4, 2);
  for (const std::uint32_t sequences : {1u, 3u, 40u}) {
    const auto without = generate(g, 30, 11, sequences);
    const auto zero = generate(g, 30, 11, sequences, 0);
    EXPECT_TRUE(zero == without) << sequences;
    EXPECT_FALSE(zero.has_phases());
    EXPECT_EQ(zero.tokens(), 30u);
  }
}

TEST(Generator, PromptsComeBeforeEachSequencesDecodeTokens) {
  constexpr std::uint64_t kDecode = 20;
  constexpr std::uint32_t kSequences = 3, kPrompt = 4;
  const auto g = zipf_generator({3, 2, 8}, 0.7, 0.4, 2);
  const auto trace = generate(g, kDecode, 11, kSequences, kPrompt);
  ASSERT_EQ(trace.tokens(), kDecode + kPrompt * kSequences);
  EXPECT_TRUE(trace.has_phases());
  // Sequence s's prompt (indices 0..P-1) right before its first decode token; the decode tokens in
  // today's round-robin order, their indices after the prompt.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> expected;  // (seq, index)
  for (std::uint64_t t = 0; t < kDecode; ++t) {
    const auto seq = static_cast<std::uint32_t>(t % kSequences);
    if (t < kSequences)
      for (std::uint32_t i = 0; i < kPrompt; ++i) expected.emplace_back(seq, i);
    expected.emplace_back(seq, kPrompt + static_cast<std::uint32_t>(t / kSequences));
  }
  ASSERT_EQ(expected.size(), trace.tokens());
  std::vector<std::uint32_t> prefill(kSequences);
  for (std::size_t t = 0; t < trace.tokens(); ++t) {
    EXPECT_EQ(trace.seq(t), expected[t].first) << t;
    EXPECT_EQ(trace.index(t), expected[t].second) << t;
    EXPECT_EQ(trace.phase(t), trace.index(t) < kPrompt ? Phase::Prefill : Phase::Decode) << t;
    prefill[trace.seq(t)] += trace.phase(t) == Phase::Prefill;
  }
  EXPECT_EQ(prefill, std::vector<std::uint32_t>(kSequences, kPrompt));

  // Streamed like the decode tokens: the source gives the same tokens, and then nothing.
  const auto source = synthetic_source(g, kDecode, 11, kSequences, kPrompt);
  EXPECT_TRUE(RoutingTrace::load(*source, g.shape()) == trace);
  Token token{};
  EXPECT_FALSE(source->next(token));

  // Fewer decode tokens than sequences: the sequences they miss still get their prompt, at the end.
  const auto short_trace = generate(g, 2, 11, 4, 1);
  ASSERT_EQ(short_trace.tokens(), 2u + 4u);
  const std::vector<std::uint32_t> seqs{0, 0, 1, 1, 2, 3}, indices{0, 1, 0, 1, 0, 0};
  for (std::size_t t = 0; t < short_trace.tokens(); ++t) {
    EXPECT_EQ(short_trace.seq(t), seqs[t]) << t;
    EXPECT_EQ(short_trace.index(t), indices[t]) << t;
  }
  EXPECT_THROW(generate(g, 10, 1, 2, 0x80000000u), std::invalid_argument);  // 2^32 + 10 tokens
}

TEST(Generator, PromptsAreTheSequencesFirstTokens) {
  // Reuse 1 repeats each sequence's previous token: with a prompt, every token of a sequence, decode
  // ones included, is its first prefill token, so the locality runs from the prompt into decode.
  const auto trace = generate(zipf_generator({2, 2, 8}, 0, 1.0, 1), 12, 8, 3, 5);
  std::vector<std::size_t> first(3, SIZE_MAX);
  for (std::size_t t = 0; t < trace.tokens(); ++t) {
    if (trace.index(t) == 0) first[trace.seq(t)] = t;
    ASSERT_NE(first[trace.seq(t)], SIZE_MAX) << t;
    EXPECT_TRUE(std::ranges::equal(trace.experts(t), trace.experts(first[trace.seq(t)]))) << t;
  }
  // One sequence: its prompt and decode tokens are the stream of P + N tokens without a prompt,
  // the first P marked prefill. The prompt is the same process, only named differently.
  const auto g = zipf_generator({3, 2, 8}, 0.5, 0.3, 1);
  const auto with = generate(g, 30, 8, 1, 6);
  const auto without = generate(g, 36, 8, 1);
  ASSERT_EQ(with.tokens(), without.tokens());
  for (std::size_t t = 0; t < with.tokens(); ++t) {
    EXPECT_EQ(with.index(t), without.index(t));
    EXPECT_TRUE(std::ranges::equal(with.experts(t), without.experts(t))) << t;
    EXPECT_EQ(with.phase(t), t < 6 ? Phase::Prefill : Phase::Decode) << t;
  }
}

TEST(Generator, AffinityFollowsTheTransition) {
  // Layer 1 follows layer 0 through the permutation e -> (e + 3) mod 8, always: every rank of layer
  // 1 is determined, so top-1 predictability is 1 and the information is H(top-1) = 3 bits.
  auto g = zipf_generator({2, 2, 8}, 0, 0, 1);
  g.layers[1].from = 0;
  g.layers[1].affinity = 1;
  g.layers[1].transition = Eigen::MatrixXd::Zero(8, 8);
  for (int e = 0; e < 8; ++e) g.layers[1].transition(e, (e + 3) % 8) = 1;
  const auto trace = generate(g, 20000, 5);
  for (std::size_t t = 0; t < trace.tokens(); ++t)
    for (int i = 0; i < 2; ++i) ASSERT_EQ(trace.experts(t, 1)[i], (trace.experts(t, 0)[i] + 3) % 8);
  const auto s = summarize(RoutingCounts::of(trace));
  EXPECT_DOUBLE_EQ(*s.cross_layer_top1_predictability, 1.0);
  EXPECT_NEAR(*s.cross_layer_mutual_information_bits, 3.0, 0.01);
  // Affinity 0 ignores the table: chance predictability (~1/8 + noise).
  g.layers[1].affinity = 0;
  EXPECT_LT(*summarize(RoutingCounts::of(generate(g, 20000, 5))).cross_layer_top1_predictability, 0.2);
}

TEST(Generator, FileRoundTrip) {
  auto g = zipf_generator({3, 2, 4}, 0.7, 0.25, 3);
  g.description = "round \"trip\"";
  g.layers[2].from = 0;
  g.layers[2].affinity = 0.5;
  g.layers[2].transition = Eigen::MatrixXd::Constant(4, 4, 0.25);
  std::ostringstream text;
  write_generator(g, text);
  const TempFile file(text.str());
  const auto back = load_generator(file.path(), {3, 2, 4}, 99);
  EXPECT_EQ(back.description, g.description);
  ASSERT_EQ(back.layers.size(), 3u);
  for (std::size_t l = 0; l < 3; ++l) {
    EXPECT_TRUE(back.layers[l].popularity.isApprox(g.layers[l].popularity, 1e-5));
    EXPECT_NEAR(back.layers[l].reuse, 0.25, 1e-12);
  }
  EXPECT_EQ(back.layers[2].from, 0u);
  EXPECT_TRUE(back.layers[2].transition.isApprox(g.layers[2].transition));
  std::ostringstream again;
  write_generator(back, again);
  EXPECT_EQ(again.str(), text.str());  // writing is a fixed point
}

TEST(Generator, FileErrorsNameFileLineAndKey) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases{
      {"popularity: zipf\nreuse: 0.2\n", {":1: zipf_exponent: missing key"}},
      {"popularity: zipf\nzipf_exponent: -1\nreuse: 0.2\n", {":2: zipf_exponent:", "out of range"}},
      {"popularity: uniform\nreuse: 0.2\nlayers: []\n", {":3: layers:", "not used with popularity: uniform"}},
      {"popularity: gaussian\nreuse: 0\n", {":1: popularity:", "uniform, zipf or table"}},
      {"popularity: uniform\nreuse: 0\nreuse: 1\n", {":3: reuse: duplicate key"}},
      {"popularity: uniform\nreuse: 0\nskew: 1\n", {":3: skew: unknown key"}},
      {"popularity: table\ntop_k: 1\nexperts: 2\nlayers:\n  - {popularity: [1, -1], reuse: 0}\n",
       {":5: layers[0].popularity[1]:", "out of range"}},
      {"popularity: table\ntop_k: 1\nexperts: 2\nlayers:\n  - {popularity: [1], reuse: 0}\n",
       {":5: layers[0].popularity:", "list of 2 weights"}},
      {"popularity: table\ntop_k: 1\nexperts: 2\nlayers:\n  - {popularity: [0, 0], reuse: 0}\n",
       {"layers[0].popularity:", "all weights are zero"}},
      {"popularity: table\ntop_k: 1\nexperts: 2\nlayers:\n  - {popularity: [1, 1], reuse: 0,\n     affinity: "
       "{from: 0, weight: 1, transition: [[1, 0], [0, 1]]}}\n",
       {":6: layers[0].affinity.from:", "earlier layer"}},
      {"popularity: [1, 2]\n", {":1: popularity:", "uniform, zipf or table"}},
      {"popularity: uniform\nreuse: [0.1\n", {"rmai-generator-test"}},  // YAML syntax error
  };
  for (const auto& [text, expected] : cases) {
    SCOPED_TRACE(text);
    const TempFile file(text);
    try {
      load_generator(file.path(), {1, 1, 2}, 1);
      ADD_FAILURE() << "accepted";
    } catch (const rmai::InputError& e) {
      EXPECT_THAT(e.what(), HasSubstr(file.path().string()));
      for (const auto& part : expected) EXPECT_THAT(e.what(), HasSubstr(part));
    }
  }
}

TEST(Generator, EveryPresetLoadsForItsModels) {
  // Parametric presets fit every model; tabulated ones exactly the models of their shape.
  std::set<std::string> loaded;
  for (const auto& name : rmai::config::preset_names("synthetic")) {
    const auto file = rmai::config::models_dir() / "synthetic" / (name + ".yaml");
    for (const auto& model : rmai::config::preset_names("moe")) {
      const auto m = rmai::spec::load_model(model, model);
      try {
        const auto g = load_generator(file, {m.moe_layers, m.top_k, m.experts}, 1);
        EXPECT_FALSE(g.description.empty()) << name;
        loaded.insert(name);
      } catch (const rmai::InputError& e) {
        EXPECT_THAT(e.what(), HasSubstr("tabulated for")) << name << " for " << model;
      }
    }
  }
  EXPECT_EQ(loaded.size(), rmai::config::preset_names("synthetic").size());
}

// ---- calibrated presets against the shipped count tables ----------------------------------------

struct Calibrated {
  std::string preset;
  std::string counts;
  std::map<std::string, std::string> where;
  TraceShape shape;
  double reuse;  // the observed reuse the preset was fitted to (scripts/calibrate-generators.sh)
};

std::vector<Calibrated> calibrated_presets() {
  std::vector<Calibrated> out;
  for (const std::string domain : {"arxiv", "book", "c4", "github", "wikipedia"}) {
    out.push_back({"olmoe-1b-7b-" + domain, "expert_counts_olmoe_repo.csv",
                   {{"model", "olmoe-1b-7b"}, {"domain", domain}}, kOlmoe, 0.39});
    out.push_back({"mixtral-8x7b-" + domain, "expert_counts_olmoe_repo.csv",
                   {{"model", "mixtral-8x7b"}, {"domain", domain}}, kMixtral, 0.37});
  }
  out.push_back({"mixtral-8x7b-mmlu", "expert_popularity_fiddler_mixtral.csv",
                 {{"model", "mixtral-8x7b"}, {"variant", "instruct"}}, kMixtral, 0.37});
  return out;
}

class CalibratedPreset : public ::testing::TestWithParam<Calibrated> {};

TEST_P(CalibratedPreset, ReproducesTheCountTables) {
  const Calibrated& c = GetParam();
  const fs::path tables = kSource / "models/routing";
  const auto targets = targets_from_tables(tables / c.counts, tables / "crosslayer_pairs_olmoe_repo.csv", c.where,
                                           c.shape, c.reuse, 1);
  const auto g = load_generator(kSource / "models/synthetic" / (c.preset + ".yaml"), c.shape, 1);
  // A seed the fit never saw (it calibrates with seed 1 and checks with seed 2).
  const auto trace = generate(g, kTokens, 12345);
  const auto stats = summarize(RoutingCounts::of(trace, {}));
  ASSERT_FALSE(targets.measured.empty());
  for (const auto l : targets.measured) {
    EXPECT_LT(total_variation(stats.per_layer[l].popularity, targets.popularity[l]), 0.05) << "layer " << l;
    EXPECT_NEAR(stats.per_layer[l].top_share, targets.popularity[l].maxCoeff(), 0.02) << "layer " << l;
  }
  for (const auto& layer : stats.per_layer) EXPECT_NEAR(layer.adjacent_reuse, c.reuse, 0.02) << "layer " << layer.layer;
  ASSERT_EQ(targets.pairs.size(), 2u);  // 0 -> 7 and 7 -> 15
  for (const auto& pair : targets.pairs) {
    const double want = mutual_information_bits(pair.counts);
    const double got = mutual_information_bits(rank_pairs(trace, pair.from, pair.to));
    EXPECT_NEAR(got, want, 0.15 * want + 0.01) << pair.from << " -> " << pair.to;
  }
}

INSTANTIATE_TEST_SUITE_P(Shipped, CalibratedPreset, ::testing::ValuesIn(calibrated_presets()),
                         [](const auto& info) {
                           std::string name = info.param.preset;
                           for (char& ch : name)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

TEST(Fit, TablesFitReproducesTheShippedPreset) {
  // The preset is what scripts/calibrate-generators.sh wrote: fitting again gives the same tables.
  const fs::path cwd = fs::current_path();
  fs::current_path(kSource);  // the preset records the tables' paths relative to the project
  const auto targets = targets_from_tables("models/routing/expert_counts_olmoe_repo.csv",
                                           "models/routing/crosslayer_pairs_olmoe_repo.csv",
                                           {{"model", "mixtral-8x7b"}, {"domain", "c4"}}, kMixtral, 0.37, 1);
  fs::current_path(cwd);
  auto fitted = fit(targets);
  const auto shipped = load_generator(kSource / "models/synthetic/mixtral-8x7b-c4.yaml", kMixtral, 1);
  fitted.description = shipped.description;
  std::ostringstream a, b;
  write_generator(fitted, a);
  write_generator(shipped, b);
  EXPECT_EQ(a.str(), b.str());
}

TEST(Fit, TablesWithoutDataForALayerFillItFromTheNearest) {
  const fs::path tables = kSource / "models/routing";
  const auto t = targets_from_tables(tables / "expert_counts_olmoe_repo.csv", "", {{"model", "olmoe-1b-7b"}, {"domain", "c4"}},
                                     kOlmoe, 0.39, 1);
  EXPECT_EQ(t.measured, (std::vector<std::uint32_t>{0, 7, 15}));
  // Layer 3 is nearest to layer 0 (distance 3 vs 4): the same skew, experts shuffled.
  auto sorted = [](Eigen::VectorXd v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_TRUE(sorted(t.popularity[3]).isApprox(sorted(t.popularity[0])));
  EXPECT_FALSE(t.popularity[3].isApprox(t.popularity[0]));
  EXPECT_TRUE(sorted(t.popularity[12]).isApprox(sorted(t.popularity[15])));
}

TEST(Fit, TableErrors) {
  const fs::path tables = kSource / "models/routing";
  const auto counts = tables / "expert_counts_olmoe_repo.csv";
  const auto expect_error = [&](auto&& call, const std::vector<std::string>& parts) {
    try {
      call();
      ADD_FAILURE() << "accepted";
    } catch (const rmai::InputError& e) {
      for (const auto& part : parts) EXPECT_THAT(e.what(), HasSubstr(part));
    }
  };
  // OLMoE's 64 experts do not fit Mixtral's 8: the first offending row is named.
  expect_error([&] { targets_from_tables(counts, "", {{"model", "olmoe-1b-7b"}}, kMixtral, 0.3, 1); },
               {counts.string() + ":10:", "expert 8 out of range", "8 experts"});
  expect_error([&] { targets_from_tables(counts, "", {{"dataset", "c4"}}, kOlmoe, 0.3, 1); },
               {"--where dataset=c4", "no such column"});
  expect_error([&] { targets_from_tables(counts, "", {{"domain", "poetry"}}, kOlmoe, 0.3, 1); },
               {"no row with a count matches domain=poetry"});
  expect_error([&] { targets_from_tables(counts, "", {}, kOlmoe, 1.5, 1); }, {"--reuse"});
  const TempFile bad("layer,expert,count\n0,1,many\n");
  expect_error([&] { targets_from_tables(bad.path(), "", {}, kOlmoe, 0.3, 1); },
               {bad.path().string() + ":2:", "count 'many'"});
}

// ---- fit on a trace, then generate: the statistics come back ------------------------------------

// A "real" trace for the fit: OLMoE github popularity and reuse, and between consecutive layers a
// dependence like a router's: each expert leads, with probability 0.8, to one of 4 experts of the
// next layer (a different random set per expert and layer).
RoutingTrace consecutive_affinity_trace(std::uint64_t tokens) {
  auto g = load_generator(kSource / "models/synthetic/olmoe-1b-7b-github.yaml", kOlmoe, 1);
  std::mt19937_64 rng(5);
  for (std::uint32_t l = 1; l < kOlmoe.layers; ++l) {
    g.layers[l].from = l - 1;
    g.layers[l].affinity = 0.8;
    g.layers[l].transition = Eigen::MatrixXd::Zero(kOlmoe.experts, kOlmoe.experts);
    for (std::uint32_t e = 0; e < kOlmoe.experts; ++e)
      for (int i = 0; i < 4; ++i) g.layers[l].transition(e, rng() % kOlmoe.experts) += 1;
  }
  return generate(g, tokens, 777);
}

TEST(Fit, FitThenGenerateReproducesATrace) {
  const auto original = consecutive_affinity_trace(20000);
  const auto counts = RoutingCounts::of(original);
  const auto want = summarize(counts);
  const auto fitted = fit(targets_of(counts));
  const auto got = summarize(RoutingCounts::of(generate(fitted, kTokens, 4242), {}));
  for (std::uint32_t l = 0; l < kOlmoe.layers; ++l) {
    EXPECT_LT(total_variation(got.per_layer[l].popularity, want.per_layer[l].popularity), 0.05) << l;
    EXPECT_NEAR(got.per_layer[l].adjacent_reuse, want.per_layer[l].adjacent_reuse, 0.02) << l;
  }
  EXPECT_NEAR(got.adjacent_reuse, want.adjacent_reuse, 0.01);
  // Predictability is a plug-in estimate that grows on short traces: compare equal lengths.
  const auto same_length = summarize(RoutingCounts::of(generate(fitted, original.tokens(), 4242)));
  EXPECT_GT(*want.cross_layer_mutual_information_bits, 0.1);  // the dependence is there to find
  EXPECT_NEAR(*same_length.cross_layer_top1_predictability, *want.cross_layer_top1_predictability, 0.03);
  EXPECT_NEAR(*got.cross_layer_mutual_information_bits, *want.cross_layer_mutual_information_bits,
              0.15 * *want.cross_layer_mutual_information_bits + 0.02);
  // Working sets follow from popularity and reuse: within 10%.
  ASSERT_EQ(same_length.working_set.size(), want.working_set.size());
  for (std::size_t w = 0; w < want.working_set.size(); ++w)
    EXPECT_NEAR(same_length.working_set[w].experts_per_layer, want.working_set[w].experts_per_layer,
                0.1 * want.working_set[w].experts_per_layer)
        << want.working_set[w].window << " tokens";
}

TEST(Fit, ReuseAndSkewOfAParametricTrace) {
  // A Mixtral-shape Zipf trace with strong reuse: the fit recovers reuse and popularity.
  const auto original = generate(zipf_generator(kMixtral, 0.8, 0.5, 3), 20000, 3);
  const auto counts = RoutingCounts::of(original, {});
  const auto want = summarize(counts);
  const auto got = summarize(RoutingCounts::of(generate(fit(targets_of(counts)), kTokens, 9), {}));
  for (std::uint32_t l = 0; l < kMixtral.layers; ++l) {
    EXPECT_LT(total_variation(got.per_layer[l].popularity, want.per_layer[l].popularity), 0.05) << l;
    EXPECT_NEAR(got.per_layer[l].adjacent_reuse, want.per_layer[l].adjacent_reuse, 0.02) << l;
    EXPECT_NEAR(got.per_layer[l].gini, want.per_layer[l].gini, 0.03) << l;
  }
}

}  // namespace
