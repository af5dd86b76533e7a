// The GPU expert cache and its replacement policies, on hand-worked sequences and against naive
// reference models.
#include <gtest/gtest.h>

#include <algorithm>
#include <list>
#include <map>
#include <random>
#include <stdexcept>
#include <vector>

#include "cache/expert_cache.hpp"

namespace rmai::cache {
namespace {

ExpertCache make_cache(const std::string& policy, std::size_t slots, std::size_t key_space = 16) {
  return ExpertCache(slots, key_space, PolicyRegistry::instance().make(policy, key_space));
}

using Keys = std::vector<ExpertKey>;

// Accesses each key with no protection; returns the number of hits.
int run(ExpertCache& cache, const Keys& keys) {
  int hits = 0;
  for (ExpertKey k : keys) hits += cache.access(k, {}).hit;
  return hits;
}

TEST(ExpertCache, MissThenHitAndFillsUpWithoutEvicting) {
  auto cache = make_cache("lru", 2);
  EXPECT_EQ(cache.slots(), 2u);
  EXPECT_EQ(cache.size(), 0u);
  auto a = cache.access(3, {});
  EXPECT_FALSE(a.hit);
  EXPECT_FALSE(a.evicted);
  EXPECT_TRUE(cache.resident(3));
  EXPECT_FALSE(cache.resident(4));
  a = cache.access(3, {});
  EXPECT_TRUE(a.hit);
  EXPECT_FALSE(a.evicted);
  a = cache.access(4, {});
  EXPECT_FALSE(a.hit);
  EXPECT_FALSE(a.evicted);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(Lru, EvictsTheLeastRecentlyUsed) {
  auto cache = make_cache("lru", 3);
  run(cache, {0, 1, 2});
  EXPECT_TRUE(cache.access(0, {}).hit);  // recency now 0, 2, 1
  auto a = cache.access(3, {});          // recency 3, 0, 2
  EXPECT_FALSE(a.hit);
  EXPECT_EQ(a.evicted, 1u);
  EXPECT_TRUE(cache.access(2, {}).hit);  // recency 2, 3, 0
  EXPECT_EQ(cache.access(4, {}).evicted, 0u);
  EXPECT_EQ(cache.access(1, {}).evicted, 3u);
  EXPECT_FALSE(cache.resident(0));
  EXPECT_FALSE(cache.resident(3));
  EXPECT_EQ(cache.size(), 3u);
}

TEST(Lfu, EvictsTheLeastFrequentlyUsedWithRecencyTieBreak) {
  auto cache = make_cache("lfu", 3);
  run(cache, {0, 0, 0, 1, 1, 2});              // frequencies 0:3 1:2 2:1
  EXPECT_EQ(cache.access(3, {}).evicted, 2u);  // 3:1
  run(cache, {1});                             // 1:3
  EXPECT_EQ(cache.access(4, {}).evicted, 3u);  // 4:1
  run(cache, {4, 4});                          // 0, 1 and 4 all at 3 uses; 0 used least recently
  EXPECT_EQ(cache.access(5, {}).evicted, 0u);
}

TEST(Lfu, FrequencySurvivesEviction) {
  auto cache = make_cache("lfu", 3);
  run(cache, {0, 0, 1, 1, 1, 2, 2, 2});        // 0:2 1:3 2:3
  EXPECT_EQ(cache.access(3, {}).evicted, 0u);  // 3:1
  EXPECT_EQ(cache.access(0, {}).evicted, 3u);  // 0 comes back with 3 uses, not 1
  // All at 3 uses: the least recent (1) goes, not the freshly reloaded 0 that in-cache LFU would drop.
  EXPECT_EQ(cache.access(4, {}).evicted, 1u);
}

TEST(Fifo, EvictsInInsertionOrderIgnoringHits) {
  auto cache = make_cache("fifo", 3);
  run(cache, {0, 1, 2, 0, 0});
  EXPECT_EQ(cache.access(3, {}).evicted, 0u);
  EXPECT_EQ(cache.access(4, {}).evicted, 1u);
}

TEST(Protect, TheCurrentLayerIsNotEvictedUnderLru) {
  auto cache = make_cache("lru", 2);
  run(cache, {0, 1});
  const Keys layer{0, 2};  // 0 is the least recent but belongs to the layer being computed
  EXPECT_EQ(cache.access(2, layer).evicted, 1u);
}

TEST(Protect, TheJustInsertedExpertSurvivesTheNextInsertUnderLfu) {
  for (bool protect : {false, true}) {
    auto cache = make_cache("lfu", 3);
    run(cache, {0, 0, 0, 1, 1, 1, 2, 2, 2});
    // A new layer uses experts 10 and 11, both cold.
    const Keys layer{10, 11};
    const std::span<const ExpertKey> p = protect ? std::span<const ExpertKey>(layer) : std::span<const ExpertKey>();
    EXPECT_EQ(cache.access(10, p).evicted, 0u);
    const auto a = cache.access(11, p);
    // Unprotected, LFU would drop 10 (1 use) before the layer ran; protected, a hot expert goes.
    EXPECT_EQ(a.evicted, protect ? 1u : 10u) << "protect=" << protect;
    EXPECT_EQ(cache.resident(10), protect);
  }
}

TEST(Protect, HonouredByEveryPolicy) {
  for (const auto& name : PolicyRegistry::instance().names()) {
    auto cache = make_cache(name, 4);
    run(cache, {0, 1, 2, 3});
    const Keys layer{0, 1, 2, 5};
    const auto a = cache.access(5, layer);
    EXPECT_EQ(a.evicted, 3u) << name;  // the only unprotected resident
  }
}

// A cyclic scan over slots + 1 keys: each key is evicted just before it comes back.
Keys cycle(std::size_t keys, int rounds) {
  Keys out;
  for (int round = 0; round < rounds; ++round)
    for (ExpertKey k = 0; k < keys; ++k) out.push_back(k);
  return out;
}

TEST(HitCounts, UniformCycleOverSlotsPlusOneKeysDefeatsEveryPolicy) {
  const std::size_t slots = 4;
  // LFU too: the frequencies stay equal, so its recency tie-break makes it behave as LRU.
  for (const char* name : {"lru", "fifo", "lfu"}) {
    auto cache = make_cache(name, slots);
    EXPECT_EQ(run(cache, cycle(slots + 1, 100)), 0) << name;
  }
}

TEST(HitCounts, CycleAfterHotExpertsLruMissesLfuKeepsTheHotOnes) {
  const std::size_t slots = 4;
  const Keys warm = cycle(3, 10);  // 0, 1 and 2 used 10 times each
  const Keys scan = cycle(slots + 1, 100);
  auto lru = make_cache("lru", slots);
  auto lfu = make_cache("lfu", slots);
  EXPECT_EQ(run(lru, warm), 27);
  EXPECT_EQ(run(lfu, warm), 27);
  // LRU hits only 0, 1, 2 at the start of the first round, then misses every access.
  EXPECT_EQ(run(lru, scan), 3);
  // LFU keeps 0, 1, 2 (always 10 uses ahead) and lets 3 and 4 fight over the last slot.
  EXPECT_EQ(run(lfu, scan), 300);
}

TEST(Registry, ListsAndMakesPoliciesByName) {
  const auto& reg = PolicyRegistry::instance();
  for (const char* name : {"lru", "lfu", "fifo"}) {
    EXPECT_TRUE(reg.contains(name)) << name;
    EXPECT_FALSE(reg.entries().at(name).description.empty()) << name;
    EXPECT_NE(reg.make(name, 8), nullptr) << name;
  }
  EXPECT_FALSE(reg.contains("nope"));
  EXPECT_THROW(reg.make("nope", 8), std::out_of_range);
}

TEST(Errors, BadPreconditionsAreLogicErrors) {
  auto policy = [] { return PolicyRegistry::instance().make("lru", 8); };
  EXPECT_THROW(ExpertCache(0, 8, policy()), std::logic_error);
  EXPECT_THROW(ExpertCache(2, 0, policy()), std::logic_error);
  EXPECT_THROW(ExpertCache(2, 8, nullptr), std::logic_error);
  ExpertCache cache(2, 8, policy());
  EXPECT_THROW(cache.access(8, {}), std::logic_error);
  EXPECT_THROW((void)cache.resident(8), std::logic_error);
  const Keys two{0, 1}, two_and_key{0, 1, 2}, one_and_key{0, 2};
  EXPECT_THROW(cache.access(2, two), std::logic_error);          // nothing left to evict
  EXPECT_THROW(cache.access(2, two_and_key), std::logic_error);
  EXPECT_NO_THROW(cache.access(2, one_and_key));                 // the key itself does not count
  EXPECT_EQ(cache.size(), 1u);
}

// Naive references: a resident list scanned in full on every eviction.
struct Reference {
  std::string policy;
  std::size_t slots;
  std::vector<ExpertKey> resident;
  std::map<ExpertKey, std::uint64_t> freq, last, inserted;
  std::uint64_t clock = 0;

  ExpertCache::Access access(ExpertKey key, const Keys& protect) {
    ++clock;
    ++freq[key];
    last[key] = clock;
    if (std::ranges::find(resident, key) != resident.end()) return {true, std::nullopt};
    std::optional<ExpertKey> evicted;
    if (resident.size() == slots) {
      auto better = [&](ExpertKey a, ExpertKey b) {  // a is a better victim than b
        if (policy == "lru") return last[a] < last[b];
        if (policy == "fifo") return inserted[a] < inserted[b];
        return std::pair(freq[a], last[a]) < std::pair(freq[b], last[b]);
      };
      std::optional<ExpertKey> best;
      for (ExpertKey r : resident)
        if (std::ranges::find(protect, r) == protect.end() && (!best || better(r, *best))) best = r;
      evicted = best;
      std::erase(resident, *best);
    }
    resident.push_back(key);
    inserted[key] = clock;
    return {false, evicted};
  }
};

TEST(Reference, RandomLayeredAccessesMatchNaiveModels) {
  const std::size_t layers = 6, experts = 8, top_k = 3, key_space = layers * experts;
  for (const auto& name : PolicyRegistry::instance().names()) {
    for (std::size_t slots : {top_k, std::size_t(5), std::size_t(17)}) {
      std::mt19937 rng(42);
      // Skewed routing, so frequencies matter.
      std::discrete_distribution<int> pick({8, 5, 3, 2, 1, 1, 1, 1});
      auto cache = make_cache(name, slots, key_space);
      Reference ref{name, slots, {}, {}, {}, {}, 0};
      for (int token = 0; token < 300; ++token) {
        for (std::size_t layer = 0; layer < layers; ++layer) {
          Keys chosen;
          while (chosen.size() < top_k) {
            const auto k = ExpertKey(layer * experts + std::size_t(pick(rng)));
            if (std::ranges::find(chosen, k) == chosen.end()) chosen.push_back(k);
          }
          for (ExpertKey k : chosen) {
            const auto got = cache.access(k, chosen);
            const auto want = ref.access(k, chosen);
            ASSERT_EQ(got.hit, want.hit) << name << " slots " << slots << " token " << token;
            ASSERT_EQ(got.evicted, want.evicted) << name << " slots " << slots << " token " << token;
            ASSERT_TRUE(cache.resident(k));
          }
          ASSERT_EQ(cache.size(), ref.resident.size());
        }
      }
    }
  }
}

}  // namespace
}  // namespace rmai::cache
