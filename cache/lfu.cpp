// Least frequently used.
//
// Choices, both deliberate:
//  - The frequency of an expert counts all its uses over the whole run (the miss that loads it and
//    every hit), and is kept when it is evicted: an expert that was popular earlier comes back with
//    its history, so a burst of one-off experts cannot flush the popular ones ("perfect" LFU rather
//    than in-cache LFU).
//  - Ties between equal frequencies go to the least recently used, which is deterministic and
//    degrades to LRU when frequencies carry no information.
#include <set>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "cache/expert_cache.hpp"

namespace rmai::cache {
namespace {

class Lfu final : public Policy {
 public:
  explicit Lfu(std::size_t key_space) : freq_(key_space, 0), last_use_(key_space, 0) {
    spare_.reserve(4);  // the cache evicts one, then inserts one: the pool stays tiny
  }

  void on_hit(ExpertKey key) override {
    // Re-key the resident's node in place: extract and reinsert allocate nothing.
    auto node = order_.extract(entry(key));
    use(key);
    node.value() = entry(key);
    order_.insert(std::move(node));
  }

  void on_insert(ExpertKey key) override {
    use(key);
    if (spare_.empty()) {
      order_.insert(entry(key));  // allocates only while the cache fills up
      return;
    }
    auto node = std::move(spare_.back());
    spare_.pop_back();
    node.value() = entry(key);
    order_.insert(std::move(node));
  }

  void on_evict(ExpertKey key) override {
    // Keep the node for the insert that follows, so a full cache never touches the heap.
    spare_.push_back(order_.extract(entry(key)));
  }

  ExpertKey victim(std::span<const ExpertKey> protect) override {
    // Least frequent first, then least recent; skips at most protect.size() entries.
    for (const auto& [freq, last, key] : order_)
      if (!is_protected(protect, key)) return key;
    throw std::logic_error("lfu: every resident expert is protected");
  }

 private:
  using Entry = std::tuple<std::uint64_t /*freq*/, std::uint64_t /*last use*/, ExpertKey>;

  Entry entry(ExpertKey key) const { return {freq_[key], last_use_[key], key}; }
  void use(ExpertKey key) {
    ++freq_[key];
    last_use_[key] = ++clock_;
  }

  std::vector<std::uint64_t> freq_, last_use_;  // by key, kept across evictions
  std::uint64_t clock_ = 0;
  std::set<Entry> order_;                        // the residents, victim first
  std::vector<std::set<Entry>::node_type> spare_;
};

RMAI_REGISTER(PolicyRegistry, "lfu", "least frequently used over the whole run, ties to least recently used",
              [](std::size_t key_space) { return std::make_unique<Lfu>(key_space); });

}  // namespace
}  // namespace rmai::cache
