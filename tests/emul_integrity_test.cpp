// Integrity of the whole fault path: every byte read through a region served by memd over each
// transport available here equals the generator's bytes, with four threads faulting concurrently on
// overlapping objects, for every granularity and layout; and two clients of one server at once.
// verbs skips where no RDMA device is found; scripts/softroce/check.sh runs it on SoftRoCE (rxe).
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <sstream>
#include <thread>

#include "emul/fabric.hpp"
#include "emul/huge_pages.hpp"
#include "emul/memd.hpp"
#include "emul/region.hpp"
#include "emul/remote.hpp"

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

}  // namespace
}  // namespace rmai::emul
