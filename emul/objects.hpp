#pragma once
// The objects the emulator serves: one per routed expert of the layers kept, each an expert's weights
// scaled down so an experiment fits this machine, with deterministic bytes derived from
// (model, layer, expert, seed). A client can check every byte it sees against generate().
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace rmai::emul {

inline constexpr std::uint64_t kPageSize = 4096;

struct ObjectInfo {
  std::uint32_t id = 0;      // dense: index in Catalog::objects()
  std::uint32_t layer = 0;   // MoE layer (trace layer numbering)
  std::uint32_t expert = 0;
  std::uint64_t bytes = 0;   // a multiple of kPageSize
  std::uint64_t stream = 0;  // seed of this object's byte stream
};

// What the catalog is built from; memd and its clients must agree on all of it (control.hpp checks).
struct CatalogSpec {
  std::string model;           // a name in models/moe
  std::uint32_t moe_layers = 0;
  std::uint32_t experts = 0;   // routed experts per layer
  double expert_bytes = 0;     // unscaled, from the model
  double scale = 1;            // 0 < scale <= 1
  std::vector<std::uint32_t> layers;  // MoE layers kept, ascending; empty: all
  std::uint64_t seed = 1;
};

class Catalog {
 public:
  // Throws InputError for a scale outside (0, 1] or a layer outside the model.
  explicit Catalog(CatalogSpec spec);

  const CatalogSpec& spec() const { return spec_; }
  const std::vector<ObjectInfo>& objects() const { return objects_; }
  const ObjectInfo& object(std::uint32_t id) const { return objects_.at(id); }
  // The object of (layer, expert), or nothing when the layer is not kept.
  std::optional<std::uint32_t> find(std::uint32_t layer, std::uint32_t expert) const;
  bool keeps_layer(std::uint32_t layer) const { return layer < layer_slot_.size() && layer_slot_[layer] >= 0; }
  std::uint64_t object_bytes() const { return object_bytes_; }  // every object has this size
  std::uint64_t total_bytes() const { return object_bytes_ * objects_.size(); }

 private:
  CatalogSpec spec_;
  std::uint64_t object_bytes_ = 0;
  std::vector<ObjectInfo> objects_;
  std::vector<int> layer_slot_;  // by MoE layer: index among kept layers, or -1
};

// Writes bytes [offset, offset + out.size()) of an object's stream. Any range can be generated on its
// own, so a reader can check a piece without the rest. offset and out.size() need no alignment.
void generate(const ObjectInfo& object, std::uint64_t offset, std::span<std::byte> out);

// The offset (within `bytes`, which starts at `offset` of the object) of the first byte that differs
// from generate(), or nothing when all are equal.
std::optional<std::uint64_t> first_mismatch(const ObjectInfo& object, std::uint64_t offset,
                                            std::span<const std::byte> bytes);

// A page-aligned buffer of `bytes` (O_DIRECT reads need the alignment) whose pages are touched once
// here, so that the switch that first uses it does not pay their page faults. Throws std::bad_alloc.
struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};
using PageBuffer = std::unique_ptr<std::byte[], FreeDeleter>;
PageBuffer touched_page_buffer(std::uint64_t bytes);

}  // namespace rmai::emul
