#pragma once
// The GPU expert cache: a fixed number of HBM slots holding routed experts, with a pluggable
// replacement policy chosen by name (PolicyRegistry, see `rmai list`).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "config/registry.hpp"

namespace rmai::cache {

using ExpertKey = std::uint32_t;  // dense: moe_layer * experts_per_layer + expert

// The one place that maps (MoE layer, expert) to a dense key and back.
inline ExpertKey expert_key(std::uint32_t layer, std::uint32_t expert, std::uint32_t experts_per_layer) {
  return layer * experts_per_layer + expert;
}
inline std::uint32_t layer_of(ExpertKey key, std::uint32_t experts_per_layer) { return key / experts_per_layer; }
inline std::uint32_t expert_of(ExpertKey key, std::uint32_t experts_per_layer) { return key % experts_per_layer; }

// A replacement policy over a dense key space [0, key_space). The cache calls it only with keys
// below key_space and only in a consistent order (insert, hits, evict, insert again, ...).
class Policy {
 public:
  virtual ~Policy() = default;
  virtual void on_hit(ExpertKey key) = 0;     // a resident expert was used
  virtual void on_insert(ExpertKey key) = 0;  // an expert became resident (and is used now)
  virtual void on_evict(ExpertKey key) = 0;   // an expert left the cache
  // Chooses the resident expert to evict; never one in `protect` (the experts of the current layer).
  // Must be deterministic: the same call sequence gives the same victims.
  virtual ExpertKey victim(std::span<const ExpertKey> protect) = 0;
};

using PolicyRegistry = rmai::Registry<Policy, std::size_t /*key_space*/>;

class ExpertCache {
 public:
  ExpertCache(std::size_t slots, std::size_t key_space, std::unique_ptr<Policy> policy);

  struct Access {
    bool hit;
    std::optional<ExpertKey> evicted;
  };
  // Uses `key`: a hit updates the policy; a miss makes it resident, evicting (per policy) when full,
  // never an expert in `protect`. `protect` may contain `key` itself; the other entries must number
  // fewer than slots(), so that a full cache always has an expert it may evict.
  Access access(ExpertKey key, std::span<const ExpertKey> protect);

  bool resident(ExpertKey key) const;
  std::size_t size() const { return size_; }
  std::size_t slots() const { return slots_; }

 private:
  std::size_t slots_;
  std::size_t size_ = 0;
  std::vector<bool> resident_;  // by key
  std::unique_ptr<Policy> policy_;
};

bool is_protected(std::span<const ExpertKey> protect, ExpertKey key);

// A doubly linked list threaded through dense arrays indexed by key: O(1) insert and removal with
// no allocation after construction. Shared by the list-based policies (LRU, FIFO).
class KeyList {
 public:
  explicit KeyList(std::size_t key_space);
  void push_front(ExpertKey key);  // key must not be in the list
  void remove(ExpertKey key);      // key must be in the list
  // The key nearest the back that is not in `protect`; throws std::logic_error if there is none.
  ExpertKey last_unprotected(std::span<const ExpertKey> protect) const;

 private:
  ExpertKey sentinel_;  // index key_space: next_ of it is the front, prev_ of it the back
  std::vector<ExpertKey> prev_, next_;
};

}  // namespace rmai::cache
