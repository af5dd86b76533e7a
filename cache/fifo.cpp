// First in, first out: evicts the expert that became resident earliest; hits do not matter.
#include "cache/expert_cache.hpp"

namespace rmai::cache {
namespace {

class Fifo final : public Policy {
 public:
  explicit Fifo(std::size_t key_space) : order_(key_space) {}
  // Front = newest insertion, back = oldest.
  void on_hit(ExpertKey) override {}
  void on_insert(ExpertKey key) override { order_.push_front(key); }
  void on_evict(ExpertKey key) override { order_.remove(key); }
  ExpertKey victim(std::span<const ExpertKey> protect) override { return order_.last_unprotected(protect); }

 private:
  KeyList order_;
};

RMAI_REGISTER(PolicyRegistry, "fifo", "first in, first out",
              [](std::size_t key_space) { return std::make_unique<Fifo>(key_space); });

}  // namespace
}  // namespace rmai::cache
