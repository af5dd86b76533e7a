// dram: every object lives in local DRAM (generated once at construction); a switch is one memcpy
// into the device buffer, the stand-in for the pinned host-to-GPU PCIe copy. The upper bound of the
// local baselines: nothing is fetched from a backing tier, no fault, no system call, so every
// counter stays 0 (the copies themselves are booked by the replay as bytes.pcie).
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "emul/store.hpp"

namespace rmai::emul {
namespace {

class DramStore final : public ExpertStore {
 public:
  explicit DramStore(const StoreContext& c) : catalog_(c.catalog) {
    // No value-initialisation: every byte is generated right after.
    bytes_ = std::make_unique_for_overwrite<std::byte[]>(catalog_.total_bytes());
    for (const ObjectInfo& object : catalog_.objects())
      generate(object, 0, {at(object.id), object.bytes});
  }

  void load(std::uint32_t object, std::span<std::byte> device) override {
    const ObjectInfo& info = catalog_.object(object);
    if (device.size() != info.bytes)
      throw std::invalid_argument("dram: the device buffer is not object-sized");
    std::memcpy(device.data(), at(object), info.bytes);
  }
  // The weights stay in DRAM; the cache dropping its GPU copy frees nothing here.
  void evict(std::uint32_t /*object*/) override {}
  Counters counters() const override { return {}; }
  std::string describe() const override { return "dram copy"; }
  bool concurrent_loads() const override { return true; }  // reads of memory nothing writes

 private:
  std::byte* at(std::uint32_t object) const {
    return bytes_.get() + std::uint64_t(object) * catalog_.object_bytes();
  }

  const Catalog& catalog_;
  std::unique_ptr<std::byte[]> bytes_;
};

RMAI_REGISTER(StoreRegistry, "dram",
              "every expert in local DRAM: one memcpy per switch (the PCIe copy's stand-in)",
              [](const StoreContext& c) { return std::make_unique<DramStore>(c); });

}  // namespace
}  // namespace rmai::emul
