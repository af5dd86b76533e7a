#include "emul/objects.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "config/errors.hpp"

namespace rmai::emul {
namespace {

// splitmix64's finalizer: a bijective mix, so word i of a stream is mix(stream + i * gamma), which any
// range can compute on its own. Not cryptographic; it only has to make every byte position distinct.
constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ULL;
std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::uint64_t fnv1a(const std::string& text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

std::uint64_t word(const ObjectInfo& object, std::uint64_t index) { return mix(object.stream + index * kGamma); }

}  // namespace

Catalog::Catalog(CatalogSpec spec) : spec_(std::move(spec)) {
  if (!(spec_.scale > 0 && spec_.scale <= 1))
    throw InputError("emul.scale", "must be in (0, 1], got " + std::to_string(spec_.scale));
  std::vector<std::uint32_t> layers = spec_.layers;
  if (layers.empty())
    for (std::uint32_t l = 0; l < spec_.moe_layers; ++l) layers.push_back(l);
  layer_slot_.assign(spec_.moe_layers, -1);
  for (const auto l : layers) {
    if (l >= spec_.moe_layers)
      throw InputError("emul.layers", "layer " + std::to_string(l) + " is outside the model's " +
                                          std::to_string(spec_.moe_layers) + " MoE layers");
    layer_slot_[l] = 0;
  }
  // Whole pages, at least one: faults and RMA reads work on pages.
  const double scaled = std::ceil(spec_.expert_bytes * spec_.scale / double(kPageSize));
  object_bytes_ = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(scaled)) * kPageSize;
  const std::uint64_t model = fnv1a(spec_.model);
  int slot = 0;
  for (std::uint32_t l = 0; l < spec_.moe_layers; ++l) {
    if (layer_slot_[l] < 0) continue;
    layer_slot_[l] = slot++;
    for (std::uint32_t x = 0; x < spec_.experts; ++x) {
      ObjectInfo o;
      o.id = static_cast<std::uint32_t>(objects_.size());
      o.layer = l;
      o.expert = x;
      o.bytes = object_bytes_;
      o.stream = mix(mix(mix(model ^ spec_.seed) + l) + x);
      objects_.push_back(o);
    }
  }
}

std::optional<std::uint32_t> Catalog::find(std::uint32_t layer, std::uint32_t expert) const {
  if (!keeps_layer(layer) || expert >= spec_.experts) return std::nullopt;
  return static_cast<std::uint32_t>(layer_slot_[layer]) * spec_.experts + expert;
}

void generate(const ObjectInfo& object, std::uint64_t offset, std::span<std::byte> out) {
  std::size_t done = 0;
  std::uint64_t index = offset / 8;
  // A partial first word.
  if (offset % 8 != 0 && !out.empty()) {
    const std::uint64_t w = word(object, index++);
    const std::size_t skip = offset % 8;
    done = std::min<std::size_t>(8 - skip, out.size());
    std::memcpy(out.data(), reinterpret_cast<const std::byte*>(&w) + skip, done);
  }
  for (; done + 8 <= out.size(); done += 8) {
    const std::uint64_t w = word(object, index++);
    std::memcpy(out.data() + done, &w, 8);
  }
  if (done < out.size()) {
    const std::uint64_t w = word(object, index);
    std::memcpy(out.data() + done, &w, out.size() - done);
  }
}

std::optional<std::uint64_t> first_mismatch(const ObjectInfo& object, std::uint64_t offset,
                                            std::span<const std::byte> bytes) {
  std::byte expected[4096];
  for (std::size_t done = 0; done < bytes.size();) {
    const std::size_t n = std::min(sizeof expected, bytes.size() - done);
    generate(object, offset + done, {expected, n});
    if (std::memcmp(expected, bytes.data() + done, n) != 0)
      for (std::size_t i = 0; i < n; ++i)
        if (expected[i] != bytes[done + i]) return done + i;
    done += n;
  }
  return std::nullopt;
}

PageBuffer touched_page_buffer(std::uint64_t bytes) {
  const std::uint64_t rounded = (bytes + kPageSize - 1) / kPageSize * kPageSize;  // aligned_alloc needs a multiple
  PageBuffer buffer(static_cast<std::byte*>(std::aligned_alloc(kPageSize, rounded)));
  if (!buffer) throw std::bad_alloc();
  std::memset(buffer.get(), 0, rounded);
  return buffer;
}

}  // namespace rmai::emul
