// Prefetching tests: `none` is the replay as it was; the oracle bounds what prefetching can do; the
// next-layer predictor learns a deterministic layer-to-layer mapping but not noise; the counts of
// summary.json add up; bad input is reported with its key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "config/errors.hpp"
#include "traces/generator.hpp"
#include "cache/prefetcher.hpp"
#include "sim_support.hpp"

namespace rmai {
namespace {

namespace fs = std::filesystem;
using testing::quickstart;
using testing::synthetic_trace;
using ::testing::HasSubstr;

// A run's summary.json (as written) with its switch records and token latencies, from a child.
struct Run {
  nlohmann::json summary;
  std::vector<metrics::SwitchRecord> switches;
  std::vector<double> token_latencies;

  double hit_rate() const { return summary["cache_hit_rate"]; }
  double mean_token_latency() const { return summary["token_latency_s"]["mean"]; }
  std::uint64_t prefetches() const { return summary["prefetches"]; }
  std::uint64_t prefetch_hits() const { return summary["prefetch_hits"]; }
  double precision() const { return prefetches() ? double(prefetch_hits()) / double(prefetches()) : 0.0; }
  // Mean token latency over the second half of the tokens: after the predictor warmed up.
  double late_token_latency() const {
    const auto half = token_latencies.begin() + std::ptrdiff_t(token_latencies.size() / 2);
    return std::accumulate(half, token_latencies.end(), 0.0) / double(token_latencies.end() - half);
  }
};

Run run(const spec::Experiment& e, const traces::RoutingTrace& trace) {
  auto outcome = testing::simulate_in_child(e, trace);
  return {nlohmann::json::parse(outcome.summary), std::move(outcome.switches), std::move(outcome.token_latencies)};
}

// Uniform experts at layer 0, then each layer a fixed permutation of the one before (affinity 1,
// no reuse): a token's first layer decides all its others.
traces::RoutingTrace permutation_trace(const spec::MoeModel& m, std::uint64_t tokens) {
  traces::Generator g;
  g.top_k = m.top_k;
  g.experts = m.experts;
  for (std::uint32_t l = 0; l < m.moe_layers; ++l) {
    traces::GeneratorLayer layer;
    layer.popularity = Eigen::VectorXd::Constant(m.experts, 1.0 / m.experts);
    if (l > 0) {
      layer.from = l - 1;
      layer.affinity = 1;
      layer.transition = Eigen::MatrixXd::Zero(m.experts, m.experts);
      for (std::uint32_t e = 0; e < m.experts; ++e) layer.transition(e, (e * 3 + l) % m.experts) = 1;  // 3 is odd: a permutation of 8
    }
    g.layers.push_back(layer);
  }
  traces::validate(g);
  return traces::generate(g, tokens, 1);
}

// Independent uniform routing: nothing to predict.
traces::RoutingTrace uniform_trace(const spec::MoeModel& m, std::uint64_t tokens) {
  return traces::generate(traces::zipf_generator({m.moe_layers, m.top_k, m.experts}, 0, 0, 1), tokens, 1);
}

TEST(Prefetch, RegistryListsThePrefetchers) {
  const auto& registry = cache::PrefetcherRegistry::instance();
  EXPECT_EQ(registry.names(), (std::vector<std::string>{"next-layer", "none", "oracle"}));
  for (const auto& [name, entry] : registry.entries()) EXPECT_FALSE(entry.description.empty()) << name;
  EXPECT_THAT(registry.entries().at("oracle").description, HasSubstr("upper bound"));
}

TEST(Prefetch, NextLayerPredictsTheMostFrequentSuccessors) {
  // 3 layers of 4 experts, top-2; keys are layer * 4 + expert.
  auto p = cache::PrefetcherRegistry::instance().make("next-layer", {3, 4, 2, {}});
  std::vector<cache::ExpertKey> predicted{99};
  const auto token = [&](std::vector<cache::ExpertKey> l0, std::vector<cache::ExpertKey> l1,
                         std::vector<cache::ExpertKey> l2) {
    std::vector<std::vector<cache::ExpertKey>> out;
    for (std::uint32_t layer = 0; const auto& keys : {l0, l1, l2}) {
      p->routed(0, layer++, keys, predicted);
      out.push_back(predicted);
    }
    return out;
  };
  // Nothing seen yet: no guess. The last layer never predicts.
  auto first = token({0, 1}, {4, 5}, {8, 9});
  EXPECT_TRUE(first[0].empty());
  EXPECT_TRUE(first[2].empty());
  // Having seen {0,1} -> {4,5} and {4,5} -> {8,9} once: the same experts again; ties to the lower id.
  auto second = token({0, 2}, {6, 7}, {10, 11});
  EXPECT_EQ(second[0], (std::vector<cache::ExpertKey>{4, 5}));
  // Now 0 -> {4,5,6,7} once each and 2 -> {6,7}: from {0,2}, experts 6 and 7 have two counts each.
  auto third = token({0, 2}, {4, 5}, {8, 9});
  EXPECT_EQ(third[0], (std::vector<cache::ExpertKey>{6, 7}));
  // Only experts of layer 1 that did follow 1 before: a single successor pair is enough.
  p->routed(1, 0, std::vector<cache::ExpertKey>{1, 3}, predicted);
  EXPECT_EQ(predicted, (std::vector<cache::ExpertKey>{4, 5}));
}

TEST(Prefetch, NoneIsTheReplayWithoutPrefetching) {
  for (const auto& sets : std::vector<std::vector<std::string>>{
           {"trace.tokens=32"}, {"trace.tokens=24", "nodes=2", "cache.policy=lfu", "memory.tier=disk-read"}}) {
    auto with = sets;
    with.push_back("cache.prefetch=none");
    const auto e = quickstart(sets);
    const auto trace = synthetic_trace(e);
    const auto a = run(e, trace);
    const auto b = run(quickstart(with), trace);
    EXPECT_EQ(a.summary.dump(), b.summary.dump());
    EXPECT_EQ(a.summary["prefetch"], "none");
    EXPECT_EQ(a.prefetches(), 0u);
    EXPECT_EQ(a.token_latencies, b.token_latencies);
    ASSERT_EQ(a.switches.size(), b.switches.size());
    for (std::size_t i = 0; i < a.switches.size(); ++i) {
      EXPECT_EQ(a.switches[i].start_s, b.switches[i].start_s);
      EXPECT_EQ(a.switches[i].end_s, b.switches[i].end_s);
      EXPECT_EQ(a.switches[i].expert, b.switches[i].expert);
      EXPECT_FALSE(b.switches[i].prefetch);
    }
    // The tokens tile the run, as before prefetching existed.
    if (e.nodes == 1) {
      EXPECT_NEAR(std::accumulate(a.token_latencies.begin(), a.token_latencies.end(), 0.0),
                  double(a.summary["simulated_time_s"]), 1e-9 * double(a.summary["simulated_time_s"]));
    }
  }
}

TEST(Prefetch, OracleRaisesHitsAndLowersLatency) {
  const auto none = quickstart({"trace.tokens=32"});
  const auto trace = synthetic_trace(none);
  const auto base = run(none, trace);
  const auto oracle = run(quickstart({"trace.tokens=32", "cache.prefetch=oracle"}), trace);
  EXPECT_GT(oracle.hit_rate(), base.hit_rate() + 0.3);
  EXPECT_LT(oracle.mean_token_latency(), base.mean_token_latency());
  EXPECT_EQ(oracle.prefetch_hits(), oracle.prefetches()) << "the oracle is never wrong";
  EXPECT_EQ(double(oracle.summary["prefetch_wasted_bytes"]), 0.0);

  // The smallest cache that can prefetch (top_k + depth slots): still every layer after the first
  // hits, so the protection of prefetched experts holds.
  const auto tight = quickstart({"trace.tokens=32", "cache.prefetch=oracle", "cache.gpu_experts=4"});
  const auto small = run(tight, trace);
  for (const auto& s : small.switches)
    if (!s.prefetch) {
      EXPECT_EQ(s.layer, 0u) << "token " << s.token;
    }
  EXPECT_GE(small.hit_rate(), 1.0 - 1.0 / tight.model.moe_layers - 1e-12);
}

// A prefetcher that fails mid-replay, with prefetch actors in flight: the simulation ends with its
// exception (no abort inside SimGrid, no actor left using the executor's state).
class ThrowingPrefetcher final : public cache::Prefetcher {
 public:
  explicit ThrowingPrefetcher(const cache::PrefetchContext& c) : c_(c) {}
  void routed(std::size_t token, std::uint32_t layer, std::span<const cache::ExpertKey>,
              std::vector<cache::ExpertKey>& predicted) override {
    if (token == 3 && layer == 1) throw std::runtime_error("the prefetcher failed");
    predicted.clear();
    if (layer + 1 < c_.layers)
      for (std::uint32_t e = 0; e < c_.depth; ++e) predicted.push_back(cache::expert_key(layer + 1, e, c_.experts));
  }

 private:
  cache::PrefetchContext c_;
};

TEST(Prefetch, AFailureMidReplayIsThrownNotAborted) {
  cache::PrefetcherRegistry::instance().add("test-throws", "fails at token 3", [](const cache::PrefetchContext& c) {
    return std::make_unique<ThrowingPrefetcher>(c);
  });
  for (const std::string nodes : {"1", "4"}) {
    const auto e = quickstart({"trace.tokens=16", "cache.prefetch=test-throws", "cache.prefetch_depth=2", "nodes=" + nodes});
    const auto trace = synthetic_trace(e);
    const pid_t pid = ::fork();
    if (pid == 0) {
      try {
        sim::simulate(e, trace, {});
      } catch (const std::runtime_error& error) {
        _exit(std::string(error.what()) == "the prefetcher failed" ? 3 : 4);
      }
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status) << " with " << nodes << " nodes";
    EXPECT_EQ(WEXITSTATUS(status), 3) << nodes << " nodes";
  }
}

TEST(Prefetch, DepthLimitsPrefetchesPerLayer) {
  const auto e = quickstart({"trace.tokens=16", "cache.prefetch=oracle", "cache.prefetch_depth=1"});
  EXPECT_EQ(e.cache.prefetch_depth, 1u);
  EXPECT_EQ(quickstart({"cache.prefetch=oracle"}).cache.prefetch_depth, e.model.top_k) << "absent: top_k";
  EXPECT_EQ(quickstart({"cache.prefetch_depth=0"}).cache.prefetch_depth, e.model.top_k) << "0: top_k";
  const auto trace = synthetic_trace(e);
  const auto out = run(e, trace);
  std::map<std::pair<std::uint64_t, std::uint32_t>, int> per_layer;
  for (const auto& s : out.switches)
    if (s.prefetch) {
      ++per_layer[{s.token, s.layer}];
      // The oracle takes the top-ranked expert.
      EXPECT_EQ(s.expert, trace.experts(s.token, s.layer)[0]);
    }
  ASSERT_FALSE(per_layer.empty());
  for (const auto& [where, n] : per_layer) EXPECT_EQ(n, 1);
}

TEST(Prefetch, NextLayerLearnsADeterministicMapping) {
  const auto none = quickstart({});
  const auto trace = permutation_trace(none.model, 64);
  const auto base = run(none, trace);
  const auto learned = run(quickstart({"cache.prefetch=next-layer"}), trace);
  const auto oracle = run(quickstart({"cache.prefetch=oracle"}), trace);
  EXPECT_GT(learned.precision(), 0.9);
  EXPECT_GT(learned.hit_rate(), base.hit_rate() + 0.3);
  // After warm-up it predicts what the oracle knows: the same token latencies within 0.1%, lower
  // than without prefetching. (While it learns, its wrong guesses take link bandwidth from the
  // switches the tokens wait for: over all 64 tokens it is slower than none.)
  EXPECT_NEAR(learned.late_token_latency(), oracle.late_token_latency(), 1e-3 * oracle.late_token_latency());
  EXPECT_LT(learned.late_token_latency(), base.late_token_latency());
}

TEST(Prefetch, NextLayerDoesNotHelpOnUniformRouting) {
  const auto none = quickstart({});
  const auto trace = uniform_trace(none.model, 64);
  const auto base = run(none, trace);
  const auto learned = run(quickstart({"cache.prefetch=next-layer"}), trace);
  // Two of eight experts follow whatever was predicted: about a quarter of the prefetches are used.
  EXPECT_GT(learned.prefetches(), 0u);
  EXPECT_LT(learned.precision(), 0.4);
  EXPECT_GT(learned.mean_token_latency(), 0.99 * base.mean_token_latency());
}

TEST(Prefetch, CountsAddUp) {
  for (const std::string prefetcher : {"next-layer", "oracle"}) {
    const auto e = quickstart({"trace.tokens=48", "cache.prefetch=" + prefetcher});
    const auto trace = synthetic_trace(e);
    const auto out = run(e, trace);
    const auto& j = out.summary;
    const double expert = e.model.expert_bytes();
    const std::uint64_t prefetch_rows = std::count_if(out.switches.begin(), out.switches.end(),
                                                      [](const auto& s) { return s.prefetch; });
    EXPECT_EQ(j["prefetch"], prefetcher);
    EXPECT_GT(out.prefetches(), 0u);
    EXPECT_EQ(out.prefetches(), prefetch_rows) << "every prefetch is a switch row";
    EXPECT_EQ(j["expert_switches"], out.switches.size());
    EXPECT_LE(out.prefetch_hits(), out.prefetches());
    // Every prefetch is used by the layer it was predicted for, or wasted.
    EXPECT_DOUBLE_EQ(double(j["prefetch_wasted_bytes"]), double(out.prefetches() - out.prefetch_hits()) * expert);
    // A prefetched expert costs bytes like any switch; hits are the accesses without a demand switch.
    EXPECT_DOUBLE_EQ(double(j["bytes"]["remote"]), double(out.switches.size()) * expert);
    EXPECT_EQ(j["expert_accesses"], 48u * e.model.moe_layers * e.model.top_k);
    EXPECT_DOUBLE_EQ(out.hit_rate(), 1.0 - double(out.switches.size() - prefetch_rows) / double(j["expert_accesses"]));
    // Prefetches are for layers after the first, and for experts of the next layer: the oracle's
    // are the token's real ones.
    for (const auto& s : out.switches) {
      EXPECT_GT(s.end_s, s.start_s);
      if (!s.prefetch) continue;
      EXPECT_GT(s.layer, 0u);
      const auto experts = trace.experts(s.token, s.layer);
      if (prefetcher == "oracle") {
        EXPECT_NE(std::find(experts.begin(), experts.end(), s.expert), experts.end());
      }
    }
    // One node replays tokens back to back: the run ends when its last token does.
    EXPECT_NEAR(std::accumulate(out.token_latencies.begin(), out.token_latencies.end(), 0.0),
                double(j["simulated_time_s"]), 1e-9 * double(j["simulated_time_s"]));
    // Deterministic, like the rest of the replay.
    EXPECT_EQ(run(e, trace).summary.dump(), j.dump());
  }
}

// stall_s_per_token is the time the tokens waited for experts: without prefetching the sum of the
// (sequential) demand switches; with it, also the waits for prefetches in flight. Either way a
// token's latency is its stall plus its compute, which prefetching does not change.
TEST(Prefetch, StallIsTheTimeTokensWaitForExperts) {
  const auto none = quickstart({"trace.tokens=32"});
  const auto trace = synthetic_trace(none);
  const double compute = sim::dense_layers_compute_time(none) + none.model.moe_layers * sim::moe_layer_compute_time(none);
  std::map<std::string, rmai::Run> runs;
  for (const std::string prefetcher : {"none", "next-layer", "oracle"}) {
    runs[prefetcher] = run(quickstart({"trace.tokens=32", "cache.prefetch=" + prefetcher}), trace);
    const auto& j = runs[prefetcher].summary;
    const double stall = j["stall_s_per_token"];
    EXPECT_GT(stall, 0.0) << prefetcher;
    EXPECT_NEAR(runs[prefetcher].mean_token_latency() - stall, compute, 1e-9 * runs[prefetcher].mean_token_latency())
        << prefetcher;
  }
  double switching = 0;
  for (const auto& s : runs["none"].switches) switching += s.end_s - s.start_s;
  EXPECT_NEAR(double(runs["none"].summary["stall_s_per_token"]) * 32, switching, 1e-9 * switching);
  // The oracle leaves almost no demand switch, but the tokens still wait for its prefetches: a
  // prefetch starts when the layer before computes (about 0.5 ms here) and takes as long as a
  // switch (about 30 ms), so it hides little.
  const auto demand = [](const rmai::Run& r) { return double(r.summary["expert_switches"]) - double(r.prefetches()); };
  EXPECT_LT(demand(runs["oracle"]), 0.1 * demand(runs["none"]));
  EXPECT_GT(double(runs["oracle"].summary["stall_s_per_token"]), 0.8 * double(runs["none"].summary["stall_s_per_token"]));
}

TEST(Prefetch, SeveralNodesShareTheLinks) {
  const auto e = quickstart({"trace.tokens=16", "nodes=3", "cache.prefetch=next-layer"});
  const auto out = run(e, synthetic_trace(e));
  EXPECT_EQ(out.summary["expert_accesses"], 3u * 16 * e.model.moe_layers * e.model.top_k);
  std::set<std::uint32_t> nodes;
  for (const auto& s : out.switches)
    if (s.prefetch) nodes.insert(s.node);
  EXPECT_EQ(nodes.size(), 3u) << "every node prefetches";
}

std::string input_error(const std::string& cache_yaml) {
  const fs::path file = fs::temp_directory_path() / ("rmai-prefetch-test-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(file) << "model: mixtral-8x7b\ntrace: {tokens: 4}\ncache:\n" << cache_yaml;
  std::string message;
  try {
    const auto e = spec::load_experiment(file, {});
    sim::simulate(e, traces::RoutingTrace({e.model.moe_layers, e.model.top_k, e.model.experts}), {});  // throws first
  } catch (const InputError& error) {
    message = error.what();
  }
  fs::remove(file);
  return message;
}

TEST(Prefetch, BadInputNamesTheKey) {
  const std::string psychic = input_error("  gpu_experts: 64\n  prefetch: psychic\n");
  EXPECT_THAT(psychic, HasSubstr(":5: cache.prefetch"));
  EXPECT_THAT(psychic, HasSubstr("\"psychic\""));
  EXPECT_THAT(psychic, HasSubstr("next-layer, none, oracle"));
  EXPECT_THAT(input_error("  gpu_experts: 3\n  prefetch: oracle\n"), HasSubstr("cache.gpu_experts"));
  EXPECT_THAT(input_error("  gpu_experts: 64\n  prefetch: oracle\n  prefetch_depth: 9\n"),
              HasSubstr("cache.prefetch_depth"));
  EXPECT_THAT(input_error("  gpu_experts: 64\n  prefetch_depth: -1\n"), HasSubstr("cache.prefetch_depth"));
}

}  // namespace
}  // namespace rmai
