// The region code on a local source: every byte read through a region equals the generator's, with
// four threads faulting concurrently on overlapping objects, for every granularity and layout; the
// fault counts follow the granularity; eviction makes the next access fetch again; what the
// transport reads into is registered with it outside the application's view and held until
// eviction; a failing transport is reported, never a hang.
#include <sys/mman.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "emul/region.hpp"

namespace rmai::emul {
namespace {

Catalog small_catalog(double expert_bytes = 1.3e6) {
  // 1.3 MB is not a whole number of pages, nor of 64-page batches: the object's end cuts granules.
  return Catalog({"test-model", 2, 6, expert_bytes, 1.0, {}, 7});
}

struct Case {
  Layout layout;
  Granularity granularity;
};

class RegionTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const std::string why = userfaultfd_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
  }
  RegionOptions options() const {
    RegionOptions o;
    o.layout = GetParam().layout;
    o.granularity = GetParam().granularity;
    o.fallback = false;  // test the layout asked for
    return o;
  }
};

std::uint64_t expected_faults(const Region& region, std::uint64_t object_bytes) {
  return (object_bytes + region.granule_bytes() - 1) / region.granule_bytes();
}

TEST_P(RegionTest, SequentialReadFaultsOncePerGranuleWithTheGeneratorsBytes) {
  const Catalog catalog = small_catalog();
  LocalSource source(catalog);
  Region region(source, options());
  EXPECT_EQ(region.layout(), GetParam().layout);
  std::vector<std::byte> copy(catalog.object_bytes());
  const auto view = region.object(3);
  std::copy(view.begin(), view.end(), copy.begin());
  region.check();
  EXPECT_EQ(first_mismatch(catalog.object(3), 0, copy), std::nullopt);
  const Counters c = region.counters();
  EXPECT_EQ(c.faults, expected_faults(region, catalog.object_bytes()));
  EXPECT_EQ(c.bytes_fetched, catalog.object_bytes());
  EXPECT_EQ(c.pages_mapped, catalog.object_bytes() / kPageSize);
  EXPECT_EQ(c.fault_latency_s.size(), c.faults);
  // The consuming thread traps once per fault (one thread: no fault waits behind another); the
  // handler at least polls, reads the message and maps with one ioctl per fault.
  EXPECT_EQ(c.transitions, c.faults);
  EXPECT_GE(c.handler_calls, 3 * c.faults);
}

TEST_P(RegionTest, FourThreadsOnOverlappingObjectsSeeOnlyTheGeneratorsBytes) {
  const Catalog catalog = small_catalog();
  LocalSource source(catalog);
  Region region(source, options());
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      // Objects 0-5 for every thread, in different orders and at different offsets: overlapping faults.
      std::vector<std::byte> buffer(64 * 1024);
      for (int round = 0; round < 40; ++round) {
        const auto id = static_cast<std::uint32_t>(rng() % 6);
        const std::uint64_t offset = rng() % (catalog.object_bytes() - buffer.size());
        const auto view = region.object(id).subspan(offset, buffer.size());
        std::copy(view.begin(), view.end(), buffer.begin());
        if (first_mismatch(catalog.object(id), offset, buffer)) ++bad;
      }
    });
  for (auto& t : threads) t.join();
  region.check();
  EXPECT_EQ(bad.load(), 0);
  // Whole objects afterwards: what was not touched faults now, and all of it is right.
  for (std::uint32_t id = 0; id < 6; ++id) {
    const auto view = region.object(id);
    EXPECT_EQ(first_mismatch(catalog.object(id), 0, {view.data(), view.size()}), std::nullopt) << "object " << id;
  }
  // Every granule was fetched exactly once, however many threads faulted on it.
  EXPECT_EQ(region.counters().bytes_fetched, 6 * catalog.object_bytes());
}

TEST_P(RegionTest, EvictionMakesTheNextAccessFetchAgain) {
  const Catalog catalog = small_catalog();
  LocalSource source(catalog);
  Region region(source, options());
  std::vector<std::byte> copy(catalog.object_bytes());
  for (int pass = 0; pass < 2; ++pass) {
    const auto view = region.object(5);
    std::copy(view.begin(), view.end(), copy.begin());
    EXPECT_EQ(first_mismatch(catalog.object(5), 0, copy), std::nullopt);
    region.evict(5);
  }
  EXPECT_EQ(region.counters().faults, 2 * expected_faults(region, catalog.object_bytes()));
  EXPECT_EQ(region.counters().bytes_fetched, 2 * catalog.object_bytes());
}

// A local source that records what the region registers, as a transport needing registrations
// (verbs) would see it: every read lands in a registered buffer, and a buffer's frames are still
// there when it is deregistered (the region drops it before freeing them).
class RegisteringSource final : public ObjectSource {
 public:
  explicit RegisteringSource(const Catalog& catalog) : inner_(catalog) {}
  const Catalog& catalog() const override { return inner_.catalog(); }
  void register_buffer(std::span<std::byte> buffer) override {
    std::lock_guard lock(mutex_);
    for (const auto& [start, bytes] : held_)
      if (buffer.data() < start + bytes && start < buffer.data() + buffer.size()) ++overlapping;
    held_[buffer.data()] = buffer.size();
    ++registered;
  }
  void deregister_buffer(std::span<std::byte> buffer) override {
    std::lock_guard lock(mutex_);
    if (held_.erase(buffer.data()) != 1) ++unknown_deregistrations;
    std::vector<unsigned char> resident((buffer.size() + kPageSize - 1) / kPageSize);
    if (mincore(buffer.data(), buffer.size(), resident.data()) != 0 ||
        std::count(resident.begin(), resident.end(), 0) != 0)
      ++freed_before_deregistration;
    ++deregistered;
  }
  void read(std::uint32_t object, std::uint64_t offset, std::span<std::byte> dst) override {
    {
      std::lock_guard lock(mutex_);
      auto it = held_.upper_bound(dst.data());
      if (it == held_.begin() || (--it, dst.data() + dst.size() > it->first + it->second)) ++unregistered_reads;
    }
    inner_.read(object, offset, dst);
  }
  std::uint64_t reads_issued() const override { return inner_.reads_issued(); }
  std::string describe() const override { return "registering"; }
  std::size_t held() const {
    std::lock_guard lock(mutex_);
    return held_.size();
  }
  bool holds_any_of(std::span<const std::byte> range) const {
    std::lock_guard lock(mutex_);
    for (const auto& [start, bytes] : held_)
      if (start < range.data() + range.size() && range.data() < start + bytes) return true;
    return false;
  }

  std::atomic<int> registered{0}, deregistered{0}, overlapping{0}, unknown_deregistrations{0},
      freed_before_deregistration{0}, unregistered_reads{0};

 private:
  LocalSource inner_;
  mutable std::mutex mutex_;
  std::map<std::byte*, std::size_t> held_;
};

TEST_P(RegionTest, ReadsLandInRegistrationsHeldUntilEvictionOutsideTheApplicationsView) {
  const Catalog catalog = small_catalog();
  RegisteringSource source(catalog);
  {
    Region region(source, options());
    for (const std::uint32_t id : {1u, 2u}) {
      const auto view = region.object(id);
      EXPECT_EQ(first_mismatch(catalog.object(id), 0, {view.data(), view.size()}), std::nullopt);
      // The NIC never writes into the view userfaultfd watches: it would race the fault handler.
      EXPECT_FALSE(source.holds_any_of(view)) << "object " << id;
    }
    const std::size_t granules = expected_faults(region, catalog.object_bytes());
    // twin: each fetched granule stays registered while resident; copy: the staging buffer only.
    const std::size_t held = GetParam().layout == Layout::Twin ? 2 * granules : 1;
    EXPECT_EQ(source.held(), held);
    region.evict(1);
    EXPECT_EQ(source.held(), GetParam().layout == Layout::Twin ? granules : 1);
    const auto again = region.object(1);
    EXPECT_EQ(first_mismatch(catalog.object(1), 0, {again.data(), again.size()}), std::nullopt);
    EXPECT_EQ(source.held(), held);
  }
  EXPECT_EQ(source.held(), 0u);  // the region deregistered everything before unmapping it
  EXPECT_EQ(source.registered.load(), source.deregistered.load());
  EXPECT_EQ(source.unregistered_reads.load(), 0);
  EXPECT_EQ(source.overlapping.load(), 0);
  EXPECT_EQ(source.unknown_deregistrations.load(), 0);
  EXPECT_EQ(source.freed_before_deregistration.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(, RegionTest,
                         ::testing::Values(Case{Layout::Twin, Granularity::Page}, Case{Layout::Twin, Granularity::Batch},
                                           Case{Layout::Twin, Granularity::Region},
                                           Case{Layout::Copy, Granularity::Page}, Case{Layout::Copy, Granularity::Batch},
                                           Case{Layout::Copy, Granularity::Region}),
                         [](const auto& info) {
                           return std::string(name_of(info.param.layout)) + "_" + name_of(info.param.granularity);
                         });

TEST(Region, ChunkedRegionsFaultOncePerChunk) {
  if (!userfaultfd_unavailable_reason().empty()) GTEST_SKIP() << userfaultfd_unavailable_reason();
  const Catalog catalog = small_catalog();
  LocalSource source(catalog);
  RegionOptions o;
  o.region_chunk = 256 * 1024;
  Region region(source, o);
  const auto view = region.object(0);
  EXPECT_EQ(first_mismatch(catalog.object(0), 0, {view.data(), view.size()}), std::nullopt);
  EXPECT_EQ(region.counters().faults, (catalog.object_bytes() + o.region_chunk - 1) / o.region_chunk);
}

// A transport that dies after a number of reads.
class DyingSource final : public ObjectSource {
 public:
  DyingSource(const Catalog& catalog, int reads_left) : inner_(catalog), reads_left_(reads_left) {}
  const Catalog& catalog() const override { return inner_.catalog(); }
  void read(std::uint32_t object, std::uint64_t offset, std::span<std::byte> dst) override {
    if (reads_left_-- <= 0) throw TransportError("memd is gone (test)");
    inner_.read(object, offset, dst);
  }
  std::uint64_t reads_issued() const override { return inner_.reads_issued(); }
  std::string describe() const override { return "dying"; }

 private:
  LocalSource inner_;
  std::atomic<int> reads_left_;
};

TEST(Region, ATransportFailureIsReportedAndNoThreadHangs) {
  if (!userfaultfd_unavailable_reason().empty()) GTEST_SKIP() << userfaultfd_unavailable_reason();
  const Catalog catalog = small_catalog();
  DyingSource source(catalog, 3);
  RegionOptions o;
  o.granularity = Granularity::Batch;
  Region region(source, o);
  std::vector<std::thread> threads;
  std::atomic<std::uint64_t> sum{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      const auto view = region.object(static_cast<std::uint32_t>(t));
      std::uint64_t s = 0;
      for (std::size_t i = 0; i < view.size(); i += kPageSize) s += static_cast<std::uint64_t>(view[i]);
      sum += s;
    });
  for (auto& t : threads) t.join();  // returns: the faults after the failure were resolved
  EXPECT_THROW(region.check(), TransportError);
  try {
    region.check();
  } catch (const TransportError& e) {
    EXPECT_STREQ(e.what(), "memd is gone (test)");
  }
}

}  // namespace
}  // namespace rmai::emul
