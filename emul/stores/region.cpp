// rmai and page4k: the experts live on a memory server and are mapped as a userfaultfd region
// (region.hpp); a switch reads the expert through the region, which faults it in at the tier's
// granularity, and copies it to the device buffer. Eviction drops the expert's pages.
#include <cstring>
#include <memory>
#include <optional>

#include "config/errors.hpp"
#include "emul/huge_pages.hpp"
#include "emul/region.hpp"
#include "emul/store.hpp"

namespace rmai::emul {
namespace {

RegionOptions options_of(const StoreContext& c) {
  const auto& e = c.experiment;
  RegionOptions o;
  const std::string& g = e.emul.granularity;
  if (g == "auto") {
    // The tier's own path: RMAI's dynamic region, or classic paging (a batch when the preset's
    // fault-around maps more than one page per fault).
    if (e.tier == "rmai") {
      o.granularity = Granularity::Region;
    } else {
      const std::uint64_t around = e.tier_params.count("fault_around");
      o.granularity = around > 1 ? Granularity::Batch : Granularity::Page;
      o.batch_pages = around;
    }
  } else {
    o.granularity = parse_granularity(g);
    o.batch_pages = e.emul.batch_pages;
  }
  if (e.tier == "rmai") o.region_chunk = static_cast<std::uint64_t>(e.tier_params.number("region_chunk"));
  if (o.region_chunk % kPageSize != 0)
    throw InputError(e.tier_params.where("region_chunk"), "must be a multiple of 4 KiB in mode: emul");
  o.layout = e.emul.layout == "copy" ? Layout::Copy : Layout::Twin;
  o.fallback = e.emul.layout == "auto";
  return o;
}

class RegionStore final : public ExpertStore {
 public:
  explicit RegionStore(const StoreContext& c) {
    if (!c.source) throw std::logic_error("the region tiers need a source");
    RegionOptions o = options_of(c);
    const auto& e = c.experiment;
    // Huge pages for the resident experts (the cache, plus the one being switched in), reserved
    // for the run when we may (root) and then given back. "auto" prefers twin on huge pages, then
    // copy: measured here, copy beats twin on 4 KiB shmem pages (bench/emul_bench.cpp).
    if (o.layout == Layout::Twin && o.granularity == Granularity::Region && o.region_chunk % kHugePageSize == 0) {
      const std::uint64_t per_object = (c.catalog.object_bytes() + kHugePageSize - 1) / kHugePageSize;
      reservation_.emplace(per_object * (e.cache.gpu_experts + e.model.top_k));
      o.huge_pages = reservation_->ok();
    }
    if (e.emul.layout == "auto" && !o.huge_pages) o.layout = Layout::Copy;
    region_ = std::make_unique<Region>(*c.source, o);
    describe_ = std::string(name_of(region_->layout())) + (region_->huge_pages() ? "-hugetlb" : "");
  }

  void load(std::uint32_t object, std::span<std::byte> device) override {
    const auto view = region_->object(object);
    std::memcpy(device.data(), view.data(), view.size());
    region_->check();
  }
  void evict(std::uint32_t object) override { region_->evict(object); }
  Counters counters() const override { return region_->counters(); }
  std::uint64_t faults() const override { return region_->faults(); }
  std::string describe() const override { return describe_; }
  std::string granularity() const override { return name_of(region_->options().granularity); }
  const Region& region() const { return *region_; }

 private:
  std::optional<HugePageReservation> reservation_;  // outlives the region: destroyed after it
  std::unique_ptr<Region> region_;
  std::string describe_;
};

RMAI_REGISTER(StoreRegistry, "rmai", "RMAI dynamic regions: userfaultfd faults served from memd, a whole expert per fault",
              [](const StoreContext& c) { return std::make_unique<RegionStore>(c); });
RMAI_REGISTER(StoreRegistry, "page4k", "classic remote paging: userfaultfd faults served from memd, 4 KiB per fault",
              [](const StoreContext& c) { return std::make_unique<RegionStore>(c); });

}  // namespace
}  // namespace rmai::emul
