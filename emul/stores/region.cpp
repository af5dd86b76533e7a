// rmai and page4k: the experts live on a memory server and are mapped as a userfaultfd region
// (region.hpp); a switch reads the expert through the region, which faults it in at the tier's
// granularity, and copies it to the device buffer. Eviction drops the expert's pages.
#include <cstring>
#include <memory>
#include <optional>

#include "config/errors.hpp"
#include "emul/huge_pages.hpp"
#include "emul/region.hpp"
#include "emul/remote.hpp"
#include "emul/store.hpp"

namespace rmai::emul {
namespace {

// What differs between the two remote paging paths, read from the tier's own parameters the way
// the simulator reads them (sim/tiers/rmai.cpp, page4k.cpp).
struct PagingPath {
  Granularity granularity = Granularity::Page;  // served per fault under emul.granularity: auto
  std::uint64_t batch_pages = 1;                // with Granularity::Batch
  std::uint64_t region_chunk = 0;               // bytes per region fault; 0: the whole object
  std::uint64_t read_size = kPageSize;          // bytes per transport read
  std::uint32_t queue_depth = 1;                // transport reads in flight
  bool huge_pages = false;                      // mapped with 2 MiB pages (rmai's map_page)
};

// RMAI: a region per fault (or per region_chunk), fault_batch pages per RDMA read, queue_depth deep.
PagingPath rmai_path(const spec::Experiment& e) {
  const auto& params = e.tier_params;
  PagingPath path;
  path.granularity = Granularity::Region;
  path.region_chunk = static_cast<std::uint64_t>(params.number("region_chunk"));
  if (path.region_chunk % kPageSize != 0)
    throw InputError(params.where("region_chunk"), "must be a multiple of 4 KiB in mode: emul");
  // fault_batch counts base pages, as in the simulator (sim/tiers/rmai.cpp); the emulator's are 4 KiB.
  if (e.platform.os.page_size != double(kPageSize))
    throw InputError(e.values.child("platform").child("os").where("page_size"),
                     "the emulator's pages are 4 KiB: mode: emul needs platform.os.page_size 4KiB");
  path.read_size = params.count("fault_batch") * kPageSize;
  path.queue_depth = static_cast<std::uint32_t>(params.count("queue_depth"));
  // The simulator maps with the same page (sim/tiers/rmai.cpp); spec/experiment.cpp allows only the
  // OS's page and huge page, and the emulator's huge pages are 2 MiB.
  path.huge_pages = params.number("map_page") != double(kPageSize);
  if (path.huge_pages && params.number("map_page") != double(kHugePageSize))
    throw InputError(params.where("map_page"), "the emulator's huge pages are 2 MiB: mode: emul needs 4KiB or 2MiB");
  return path;
}

// Classic paging: one read per fault, of fault_around pages (a batch when that is more than one).
PagingPath page4k_path(const spec::Experiment& e) {
  PagingPath path;
  path.batch_pages = e.tier_params.count("fault_around");
  path.granularity = path.batch_pages > 1 ? Granularity::Batch : Granularity::Page;
  return path;
}

RegionOptions options_of(const spec::Experiment& e, const PagingPath& path) {
  RegionOptions o;
  if (e.emul.granularity == "auto") {
    o.granularity = path.granularity;
    o.batch_pages = path.batch_pages;
  } else {
    o.granularity = parse_granularity(e.emul.granularity);
    o.batch_pages = e.emul.batch_pages;
  }
  o.region_chunk = path.region_chunk;
  o.layout = e.emul.layout == "copy" ? Layout::Copy : Layout::Twin;
  o.fallback = e.emul.layout == "auto";
  return o;
}

class RegionStore final : public ExpertStore {
 public:
  RegionStore(const StoreContext& c, const PagingPath& path) {
    if (!c.remote) throw std::logic_error("the region tiers need a memd to read from");
    const auto& e = c.experiment;
    RemoteOptions remote = *c.remote;
    remote.read_size = path.read_size;
    remote.queue_depth = path.queue_depth;
    source_ = std::make_unique<RemoteSource>(c.catalog, remote);
    RegionOptions o = options_of(e, path);
    // map_page 2MiB: twin on huge pages for the resident experts (the GPU cache, or with a host
    // cache the host cache, whose evictions unmap; plus the one being switched in), reserved for the
    // run (root) and then given back. Otherwise 4 KiB pages, where "auto" takes copy: measured here,
    // copy beats twin on 4 KiB shmem pages (bench/emul_bench.cpp).
    if (path.huge_pages) {
      const std::string where = e.tier_params.where("map_page");
      if (o.layout != Layout::Twin)
        throw InputError(where, "2 MiB pages need emul.layout twin or auto (copy maps 4 KiB pages)");
      if (o.granularity != Granularity::Region || o.region_chunk % kHugePageSize != 0)
        throw InputError(where, "2 MiB pages need whole regions: emul.granularity region or auto, and a region_chunk "
                                "that is 'expert' or a multiple of 2 MiB");
      const std::uint64_t per_object = (c.catalog.object_bytes() + kHugePageSize - 1) / kHugePageSize;
      const std::uint64_t mapped = e.cache.host_experts > 0 ? e.cache.host_experts : e.cache.gpu_experts;
      // No more than the catalog holds: emul.layers may serve far fewer experts than the caches count.
      reservation_.emplace(per_object * std::min<std::uint64_t>(mapped + e.model.top_k, c.catalog.objects().size()));
      if (!reservation_->ok())
        throw InputError(where, "2 MiB pages could not be reserved here (root raises vm.nr_hugepages; otherwise "
                                "they must be free already); set memory.rmai.map_page=4KiB");
      o.huge_pages = true;
    } else if (e.emul.layout == "auto") {
      o.layout = Layout::Copy;
    }
    region_ = std::make_unique<Region>(*source_, o);
    if (path.huge_pages && !region_->huge_pages())
      throw InputError(e.tier_params.where("map_page"), "the region could not be mapped with 2 MiB pages here");
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
  const RemoteSource* remote() const override { return source_.get(); }
  // The region serves faults of any number of threads (tests/emul_integrity_test.cpp, four threads).
  bool concurrent_loads() const override { return true; }
  // A region stays mapped until evicted: RMAI's host cache is its set of mapped regions.
  bool holds_until_evicted() const override { return true; }

 private:
  std::unique_ptr<RemoteSource> source_;            // outlives the region, which reads through it
  std::optional<HugePageReservation> reservation_;  // outlives the region: destroyed after it
  std::unique_ptr<Region> region_;
  std::string describe_;
};

RMAI_REGISTER(StoreRegistry, "rmai", "RMAI dynamic regions: userfaultfd faults served from memd, a whole expert per fault",
              [](const StoreContext& c) { return std::make_unique<RegionStore>(c, rmai_path(c.experiment)); });
RMAI_REGISTER(StoreRegistry, "page4k", "classic remote paging: userfaultfd faults served from memd, 4 KiB per fault",
              [](const StoreContext& c) { return std::make_unique<RegionStore>(c, page4k_path(c.experiment)); });

}  // namespace
}  // namespace rmai::emul
