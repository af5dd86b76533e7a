#include "cache/expert_cache.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

namespace rmai::cache {

ExpertCache::ExpertCache(std::size_t slots, std::size_t key_space, std::unique_ptr<Policy> policy)
    : slots_(slots), resident_(key_space, false), policy_(std::move(policy)) {
  if (slots == 0) throw std::logic_error("ExpertCache: needs at least one slot");
  if (key_space == 0 || key_space > std::numeric_limits<ExpertKey>::max())
    throw std::logic_error("ExpertCache: key space must be in [1, 2^32 - 1], got " + std::to_string(key_space));
  if (!policy_) throw std::logic_error("ExpertCache: no replacement policy");
}

bool ExpertCache::resident(ExpertKey key) const {
  if (key >= resident_.size())
    throw std::logic_error("ExpertCache: key " + std::to_string(key) + " outside the key space " +
                           std::to_string(resident_.size()));
  return resident_[key];
}

ExpertCache::Access ExpertCache::access(ExpertKey key, std::span<const ExpertKey> protect) {
  if (key >= resident_.size())
    throw std::logic_error("ExpertCache: key " + std::to_string(key) + " outside the key space " +
                           std::to_string(resident_.size()));
  // The sim protects the whole current layer, the accessed expert included; only the others can
  // pin slots, and they must leave one free to evict.
  const std::size_t others = protect.size() - (is_protected(protect, key) ? 1 : 0);
  if (others >= slots_)
    throw std::logic_error("ExpertCache: " + std::to_string(others) + " protected experts in a cache of " +
                           std::to_string(slots_) + " slots leave nothing to evict");

  if (resident_[key]) {
    policy_->on_hit(key);
    return {true, std::nullopt};
  }
  std::optional<ExpertKey> evicted;
  if (size_ == slots_) {
    const ExpertKey v = policy_->victim(protect);
    // Cheap guard against a faulty policy: a wrong victim would silently corrupt the residency.
    if (v >= resident_.size() || !resident_[v] || is_protected(protect, v))
      throw std::logic_error("ExpertCache: the policy chose " + std::to_string(v) +
                             ", which is not a resident unprotected expert");
    resident_[v] = false;
    --size_;
    policy_->on_evict(v);
    evicted = v;
  }
  resident_[key] = true;
  ++size_;
  policy_->on_insert(key);
  return {false, evicted};
}

bool is_protected(std::span<const ExpertKey> protect, ExpertKey key) {
  // protect is one layer's union: top-k keys one token at a time, a few hundred at most for a batch
  // (a layer's experts); a linear scan of that beats building a set for every lookup.
  return std::find(protect.begin(), protect.end(), key) != protect.end();
}

KeyList::KeyList(std::size_t key_space)
    : sentinel_(static_cast<ExpertKey>(key_space)), prev_(key_space + 1, sentinel_), next_(key_space + 1, sentinel_) {}

void KeyList::push_front(ExpertKey key) {
  const ExpertKey old_front = next_[sentinel_];
  prev_[key] = sentinel_;
  next_[key] = old_front;
  prev_[old_front] = key;
  next_[sentinel_] = key;
}

void KeyList::remove(ExpertKey key) {
  next_[prev_[key]] = next_[key];
  prev_[next_[key]] = prev_[key];
}

ExpertKey KeyList::last_unprotected(std::span<const ExpertKey> protect) const {
  for (ExpertKey k = prev_[sentinel_]; k != sentinel_; k = prev_[k])
    if (!is_protected(protect, k)) return k;
  throw std::logic_error("replacement policy: every resident expert is protected");
}

}  // namespace rmai::cache
