// Integrity of the whole fault path: every byte read through a region served by memd over each
// transport available here equals the generator's bytes, with four threads faulting concurrently on
// overlapping objects, for every granularity and layout; and two clients of one server at once.
// verbs skips where no RDMA device is found; scripts/softroce/check.sh runs it on SoftRoCE (rxe).
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "emul/emul_replay.hpp"
#include "emul/emulation.hpp"
#include "emul/fabric.hpp"
#include "emul/huge_pages.hpp"
#include "emul/memd.hpp"
#include "emul/region.hpp"
#include "emul/remote.hpp"
#include "emul/store.hpp"
#include "spec/experiment.hpp"
#include "traces/experiment_trace.hpp"

namespace rmai::emul {
namespace {

const std::string kSecret = "integrity-test-secret-0123456789";

// 3 layers x 4 experts of 2.3 MB: not a whole number of 64-page batches nor of huge pages.
Catalog test_catalog() { return Catalog({"integrity-moe", 3, 4, 2.3e6, 1.0, {}, 11}); }

struct Case {
  std::string provider;
  Granularity granularity;
  int layout;  // 0 twin on huge pages, 1 copy, 2 twin on shmem pages
};

std::string name_of(const Case& c) {
  static const char* layouts[] = {"twin_hugetlb", "copy", "twin_shmem"};
  return c.provider + "_" + emul::name_of(c.granularity) + "_" + layouts[c.layout];
}

class Integrity : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (const auto why = userfaultfd_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    if (const auto why = provider_unavailable_reason(GetParam().provider); !why.empty()) GTEST_SKIP() << why;
  }
};

// Four threads read random 48 KiB windows of the twelve objects, then every object whole; the
// cache-like eviction in between makes later reads fault again.
void hammer(Region& region, const Catalog& catalog, std::atomic<int>& bad) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      std::vector<std::byte> window(48 * 1024);
      for (int i = 0; i < 30; ++i) {
        const auto id = static_cast<std::uint32_t>(rng() % catalog.objects().size());
        const std::uint64_t offset = rng() % (catalog.object_bytes() - window.size());
        const auto view = region.object(id).subspan(offset, window.size());
        std::copy(view.begin(), view.end(), window.begin());
        if (first_mismatch(catalog.object(id), offset, window)) ++bad;
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& o : catalog.objects()) {
    const auto view = region.object(o.id);
    if (first_mismatch(o, 0, {view.data(), view.size()})) ++bad;
  }
}

TEST_P(Integrity, FourFaultingThreadsSeeOnlyTheGeneratorsBytes) {
  const Case& c = GetParam();
  const Catalog catalog = test_catalog();
  std::ostringstream log;
  MemoryServerOptions so;
  so.provider = c.provider;
  so.secret = kSecret;
  so.log = &log;
  MemoryServer server(catalog, so);
  RemoteOptions ro;
  ro.provider = c.provider;
  ro.server = server.address();
  ro.secret = kSecret;
  ro.read_size = c.granularity == Granularity::Page ? kPageSize : 256 << 10;
  ro.queue_depth = c.granularity == Granularity::Page ? 1 : 8;
  ro.timeout_s = 10;  // generous: the SoftRoCE guest (TCG on 2 busy cores) stalls for seconds at times
  RemoteSource source(catalog, ro);

  std::optional<HugePageReservation> huge;
  RegionOptions o;
  o.granularity = c.granularity;
  o.layout = c.layout == 1 ? Layout::Copy : Layout::Twin;
  o.fallback = false;
  if (c.layout == 0) {
    huge.emplace(catalog.objects().size() * 2 + 2);
    if (!huge->ok()) GTEST_SKIP() << "no huge pages (needs root or vm.nr_hugepages)";
    o.huge_pages = true;
  }
  Region region(source, o);
  ASSERT_EQ(region.huge_pages(), c.layout == 0);

  std::atomic<int> bad{0};
  hammer(region, catalog, bad);
  for (const auto& obj : catalog.objects())
    if (obj.id % 2 == 0) region.evict(obj.id);  // half of them fault again below
  hammer(region, catalog, bad);
  region.check();
  EXPECT_EQ(bad.load(), 0);
  const Counters counters = region.counters();
  // Fetched once per granule each time an object is faulted in, whatever the number of threads
  // faulting on it: twelve objects, then the six evicted ones again.
  EXPECT_EQ(counters.bytes_fetched, 18 * catalog.object_bytes());
  EXPECT_EQ(source.reads_issued() > 0, true);
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* provider : {"tcp", "shm", "verbs"}) {
    for (const auto g : {Granularity::Page, Granularity::Batch, Granularity::Region})
      for (const int layout : {1, 2}) out.push_back({provider, g, layout});
    out.push_back({provider, Granularity::Region, 0});  // huge pages map whole regions only
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(, Integrity, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return name_of(info.param); });

// A store that checks every byte each load brings against the generator's.
class VerifyingStore final : public ExpertStore {
 public:
  VerifyingStore(ExpertStore& inner, const Catalog& catalog) : inner_(inner), catalog_(catalog) {}
  void load(std::uint32_t object, std::span<std::byte> device) override {
    const int now = ++in_flight;
    for (int seen = most_in_flight; now > seen && !most_in_flight.compare_exchange_weak(seen, now);) {
    }
    inner_.load(object, device);
    --in_flight;
    ++loads;
    if (first_mismatch(catalog_.object(object), 0, device)) ++bad;
  }
  void evict(std::uint32_t object) override { inner_.evict(object); }
  Counters counters() const override { return inner_.counters(); }
  std::uint64_t faults() const override { return inner_.faults(); }
  std::string describe() const override { return inner_.describe(); }
  bool concurrent_loads() const override { return inner_.concurrent_loads(); }
  bool holds_until_evicted() const override { return inner_.holds_until_evicted(); }
  std::atomic<int> loads{0}, bad{0}, in_flight{0}, most_in_flight{0};

 private:
  ExpertStore& inner_;
  const Catalog& catalog_;
};

// The emulator's replay of `e` through an rmai store over a memd of its own, every byte checked.
struct VerifiedReplay {
  metrics::RunResult result;
  int loads = 0, bad = 0, most_in_flight = 0;
};
VerifiedReplay verified_replay(const spec::Experiment& e) {
  const Catalog catalog = catalog_of(e);
  std::ostringstream log;
  MemoryServerOptions so;
  so.secret = kSecret;
  so.log = &log;
  MemoryServer server(catalog, so);
  RemoteOptions remote;
  remote.server = server.address();
  remote.secret = kSecret;
  remote.timeout_s = 10;
  const auto store = StoreRegistry::instance().make("rmai", {e, catalog, &remote, ""});
  VerifyingStore verifying(*store, catalog);
  VerifiedReplay out;
  out.result = replay(e, traces::spilled_experiment_trace(e), catalog, verifying);
  out.loads = verifying.loads;
  out.bad = verifying.bad;
  out.most_in_flight = verifying.most_in_flight;
  return out;
}

spec::Experiment small_batched(const std::vector<std::string>& sets) {
  std::vector<std::string> all{"mode=emul", "emul.scale=0.005", "emul.layers=0-1", "cache.gpu_experts=8",
                               "trace.tokens=32", "trace.sequences=4", "serving.batch=4"};
  all.insert(all.end(), sets.begin(), sets.end());
  return spec::load_experiment(std::string(RMAI_SOURCE_DIR) + "/experiments/quickstart.yaml", all);
}

// The emulator's replay of batched steps with two faulting threads over the same regions: every byte
// checked, the same switches as one thread takes, and loads in flight at once (a layer's misses
// take about a millisecond each, the second thread starts within microseconds).
TEST(ReplayIntegrity, BatchedStepsWithConcurrentFaultingThreads) {
  if (const auto why = userfaultfd_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  const auto run = [](std::uint32_t concurrency) {
    auto v = verified_replay(small_batched({"memory.rmai.concurrency=" + std::to_string(concurrency)}));
    auto& r = v.result;
    EXPECT_EQ(v.bad, 0) << "concurrency " << concurrency;
    EXPECT_EQ(std::size_t(v.loads), r.switches.size());
    EXPECT_EQ(r.serving.decode_steps, 8u);
    EXPECT_EQ(v.most_in_flight > 1, concurrency > 1) << "loads at once: " << v.most_in_flight;
    return std::move(r);
  };
  const auto one = run(1), two = run(2);
  ASSERT_GT(one.switches.size(), 16u);
  const auto keys = [](const metrics::RunResult& r) {
    std::multiset<std::pair<std::uint32_t, std::uint32_t>> out;
    for (const auto& s : r.switches.records()) out.insert({s.layer, s.expert});
    return out;
  };
  EXPECT_EQ(keys(one), keys(two));
  EXPECT_EQ(one.page_faults, two.page_faults);
  std::uint64_t faults = 0;
  for (const auto& s : two.switches.records()) faults += s.faults;
  EXPECT_EQ(faults, two.page_faults);  // the switches' shares add up to the store's count
}

// A host cache in the emulator is the set of mapped regions: a GPU eviction leaves the region
// mapped, a host-cache eviction unmaps it. A GPU miss the host cache holds copies the mapped bytes
// and takes no fault; every byte is still checked, also with two faulting threads.
TEST(ReplayIntegrity, AHostCacheOfMappedRegions) {
  if (const auto why = userfaultfd_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  const auto plain = verified_replay(small_batched({}));
  const auto hosted = verified_replay(small_batched({"cache.host_experts=12"}));
  for (const auto* v : {&plain, &hosted}) EXPECT_EQ(v->bad, 0);
  const auto& r = hosted.result;
  EXPECT_EQ(r.switches.size(), plain.result.switches.size());  // the GPU cache misses the same
  ASSERT_GT(r.serving.host_hits, 0u);
  // More experts came from the tier than the host cache holds: it evicted, and unmapped, some.
  ASSERT_GT(r.switches.size() - r.serving.host_hits, 12u);
  std::uint64_t without_fault = 0;
  for (const auto& s : r.switches.records()) without_fault += s.faults == 0;
  EXPECT_EQ(without_fault, r.serving.host_hits);
  EXPECT_EQ(r.page_faults, plain.result.page_faults - r.serving.host_hits * (plain.result.page_faults / plain.result.switches.size()));
  const auto two = verified_replay(small_batched({"cache.host_experts=12", "memory.rmai.concurrency=2"}));
  EXPECT_EQ(two.bad, 0);
  EXPECT_EQ(two.result.page_faults, r.page_faults);
}

}  // namespace
}  // namespace rmai::emul
