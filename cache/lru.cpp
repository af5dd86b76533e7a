// Least recently used: evicts the resident expert whose last use is oldest.
#include "cache/expert_cache.hpp"

namespace rmai::cache {
namespace {

class Lru final : public Policy {
 public:
  explicit Lru(std::size_t key_space) : order_(key_space) {}
  // Front = most recent use, back = least recent.
  void on_hit(ExpertKey key) override {
    order_.remove(key);
    order_.push_front(key);
  }
  void on_insert(ExpertKey key) override { order_.push_front(key); }
  void on_evict(ExpertKey key) override { order_.remove(key); }
  ExpertKey victim(std::span<const ExpertKey> protect) override { return order_.last_unprotected(protect); }

 private:
  KeyList order_;
};

RMAI_REGISTER(PolicyRegistry, "lru", "least recently used",
              [](std::size_t key_space) { return std::make_unique<Lru>(key_space); });

}  // namespace
}  // namespace rmai::cache
