// The fast path's fluid model (sim/fabric.hpp) and its scheduler of nodes (sim/node_fibers.hpp),
// against closed forms: SimGrid's CM02 sharing as default_simgrid_options() configures it, a flow's
// share weighted by the inverse of its route's latency, FATPIPE links capping each flow.
#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <vector>

#include "sim/fabric.hpp"
#include "sim/node_fibers.hpp"

namespace rmai::sim {
namespace {

constexpr double kRelative = 1e-12;
constexpr double kGB = 1e9;

void expect_near_relative(double actual, double expected) {
  EXPECT_NEAR(actual, expected, kRelative * std::abs(expected)) << "expected " << expected;
}

FabricLink shared(double bandwidth) { return {bandwidth, false, false}; }
FabricLink per_flow(double bandwidth) { return {bandwidth, true, false}; }

// Runs the fabric until every flow has ended; returns the ends by flow id.
std::vector<double> ends(Fabric& fabric, std::size_t flows) {
  std::vector<double> end(flows, -1);
  while (!fabric.idle()) {
    const auto id = fabric.advance();
    end.at(id) = fabric.now();
  }
  return end;
}

TEST(Fabric, AFlowAloneTakesLatencyThenBytesOverItsNarrowestLink) {
  Fabric fabric({shared(25 * kGB), shared(12.5 * kGB), shared(150 * kGB)});
  const std::vector<std::uint32_t> route{0, 1, 2};
  const auto id = fabric.start(0.5, 2e-6, 1e9, route, false);
  EXPECT_FALSE(fabric.idle());
  EXPECT_EQ(fabric.advance(), id);
  EXPECT_TRUE(fabric.ended(id));
  EXPECT_EQ(fabric.finish(id), (0.5 + 2e-6) + 1e9 / (12.5 * kGB)) << "SimGrid's very additions";
  EXPECT_TRUE(fabric.idle());
}

TEST(Fabric, FlowsOfEqualLatencyShareACrowdedLinkEqually) {
  // Two nodes' fetches through one server NIC (link 0), each over its own NIC (links 1, 2).
  Fabric fabric({shared(25 * kGB), shared(25 * kGB), shared(25 * kGB)});
  const std::vector<std::uint32_t> a{0, 1}, b{0, 2};
  const double bytes = 1e9, lat = 1e-6;
  fabric.start(0, lat, bytes, a, false);
  fabric.start(0, lat, bytes, b, false);
  const auto end = ends(fabric, 2);
  expect_near_relative(end[0], lat + 2 * bytes / (25 * kGB));
  expect_near_relative(end[1], lat + 2 * bytes / (25 * kGB));
}

TEST(Fabric, ALaterFlowSlowsTheOneUnderWayFromWhenItsLatencyIsPaid) {
  const double c = 10 * kGB, lat = 1e-3, bytes = 1e9;
  Fabric fabric({shared(c)});
  const std::vector<std::uint32_t> route{0};
  fabric.start(0, lat, bytes, route, false);    // alone from 1 ms
  fabric.start(0.05, lat, bytes, route, false);  // shares from 51 ms
  const auto end = ends(fabric, 2);
  // The first moved 0.05 s * c alone, then both move at c / 2 until it ends; the second then alone.
  const double first_left = bytes - 0.05 * c;
  const double first_end = (0.05 + lat) + first_left / (c / 2);
  expect_near_relative(end[0], first_end);
  expect_near_relative(end[1], first_end + (bytes - first_left) / c);
}

TEST(Fabric, ACrowdedLinkIsSharedInInverseProportionToTheFlowsLatencies) {
  // CM02's sharing penalty is the route's latency: a flow of three times the latency gets a third
  // of the other's rate.
  const double c = 12 * kGB, bytes = 1e9;
  Fabric fabric({shared(c), shared(100 * kGB), shared(100 * kGB)});
  const std::vector<std::uint32_t> near{0, 1}, far{0, 2};
  fabric.start(0, 1e-6, bytes, near, false);
  fabric.start(0, 3e-6, bytes, far, false);
  const auto end = ends(fabric, 2);
  // From 3 us both flow: near at 3c/4, far at c/4 (near moved 2 us alone at c before).
  const double near_left = bytes - 2e-6 * c;
  const double near_end = 3e-6 + near_left / (0.75 * c);
  expect_near_relative(end[0], near_end);
  const double far_left = bytes - (near_end - 3e-6) * 0.25 * c;
  expect_near_relative(end[1], near_end + far_left / c);
}

TEST(Fabric, APerFlowLinkCapsEachFlowAndTheOthersTakeTheRest) {
  // Link 1 is a FATPIPE cap on the first flow only: it gets 2 GB/s, the other the rest of link 0.
  const double c = 10 * kGB, cap = 2 * kGB, bytes = 1e9, lat = 1e-6;
  Fabric fabric({shared(c), per_flow(cap), shared(100 * kGB)});
  const std::vector<std::uint32_t> capped{0, 1}, free{0, 2};
  fabric.start(0, lat, bytes, capped, false);
  fabric.start(0, lat, bytes, free, false);
  const auto end = ends(fabric, 2);
  const double free_end = lat + bytes / (c - cap);
  expect_near_relative(end[1], free_end);
  expect_near_relative(end[0], free_end + (bytes - (free_end - lat) * cap) / cap);
}

TEST(Fabric, AFatpipeLinkGivesAFlowOfALongerRouteLessThanItsBandwidth) {
  // SimGrid's FATPIPE constraint: its usage is the largest 1 / penalty among its flows, so the flow
  // of three times the latency gets a third of the link while both flow (each alone gets it all).
  const double c = 10 * kGB, bytes = 1e9;
  Fabric fabric({per_flow(c), shared(100 * kGB), shared(100 * kGB)});
  const std::vector<std::uint32_t> near{0, 1}, far{0, 2};
  fabric.start(0, 1e-6, bytes, near, false);
  fabric.start(0, 3e-6, bytes, far, false);
  const auto end = ends(fabric, 2);
  const double near_end = 1e-6 + bytes / c;  // all of the link from its start
  expect_near_relative(end[0], near_end);
  const double far_left = bytes - (near_end - 3e-6) * c / 3;
  expect_near_relative(end[1], near_end + far_left / c);
}

TEST(Fabric, AFlowWithoutBytesEndsWithItsLatencyAndIdsAreReused) {
  Fabric fabric({shared(kGB)});
  const std::vector<std::uint32_t> route{0};
  const auto id = fabric.start(1, 5e-6, 0, route, false);
  EXPECT_EQ(fabric.advance(), id);
  EXPECT_EQ(fabric.finish(id), 1 + 5e-6);
  EXPECT_EQ(fabric.start(2, 0, 0, route, false), id) << "a finished flow's id is free again";
  EXPECT_THROW(fabric.finish(id), std::logic_error) << "in flight";
  EXPECT_EQ(fabric.advance(), id);
  fabric.finish(id);
  EXPECT_THROW(fabric.finish(id), std::logic_error) << "finished already: its id must not be freed twice";
  EXPECT_THROW(fabric.start(0.5, 0, 1, route, false), std::logic_error) << "before the fabric's clock";
}

// Flows that a max-min solution cannot tell apart move as one class (processor sharing over the
// class's service): on random star platforms, with nodes of random latencies, caps and transfers
// one at a time each, the classes' dates must be those of every flow solved on its own.
TEST(Fabric, ClassesOfLikeFlowsGiveTheDatesOfFlowsSolvedOneByOne) {
  std::mt19937 random(20261203);
  for (int round = 0; round < 20; ++round) {
    const int nodes = 2 + int(random() % 7);
    std::vector<FabricLink> links{{25e9, false, true}, {12e9, false, true}};  // two servers' NICs
    std::vector<std::vector<std::uint32_t>> routes;  // per node and server
    std::vector<double> latency;
    for (int n = 0; n < nodes; ++n) {
      const auto own = static_cast<std::uint32_t>(links.size());
      links.push_back({double(10 + random() % 20) * 1e9, false, false});  // the node's NIC
      links.push_back({double(50 + random() % 100) * 1e9, false, false});  // its DRAM
      links.push_back({double(5 + random() % 30) * 1e9, true, false});     // a per-flow cap
      for (std::uint32_t server = 0; server < 2; ++server) routes.push_back({server, own, own + 1, own + 2});
      latency.push_back(1e-6 * double(1 + random() % 3));  // nodes of like latencies form classes
    }
    std::vector<double> bytes, gaps;
    for (int i = 0; i < nodes * 12; ++i) {
      bytes.push_back(double(1 + random() % 400) * 1e6);
      gaps.push_back(double(random() % 5) * 1e-3);
    }
    std::vector<std::vector<double>> result[2];
    for (const bool classes : {false, true}) {
      Fabric fabric(links);
      NodeFibers fibers(fabric);
      auto& seen = result[classes];
      seen.assign(std::size_t(nodes), {});
      for (int n = 0; n < nodes; ++n)
        fibers.add([&, n] {
          double clock = 0;
          for (int k = 0; k < 12; ++k) {
            const std::size_t i = std::size_t(n * 12 + k);
            clock += gaps[i];
            const auto& route = routes[std::size_t(n * 2 + k % 2)];
            clock = fibers.wait(fabric.start(clock, latency[std::size_t(n)], bytes[i], route, classes));
            seen[std::size_t(n)].push_back(clock);
          }
        });
      fibers.run();
    }
    for (int n = 0; n < nodes; ++n)
      for (int k = 0; k < 12; ++k)
        EXPECT_NEAR(result[1][std::size_t(n)][std::size_t(k)], result[0][std::size_t(n)][std::size_t(k)],
                    1e-9 * result[0][std::size_t(n)][std::size_t(k)])
            << "round " << round << " node " << n << " transfer " << k;
  }
}

TEST(NodeFibers, NodesMeetOnlyWhereTheirFlowsShareALink) {
  // Two nodes, each twice: compute, then a transfer of 1e8 bytes over one 1 GB/s link (no latency);
  // node 0 computes 10 ms, node 1 50 ms. By hand: node 0 alone 10-50 ms (4e7 bytes), both at half
  // until node 0 ends at 170 ms; node 1 alone 170-180 ms; both from 180 ms until node 1 ends at
  // 240 ms; node 0 alone 240-290 ms; both from 290 ms until node 0 ends at 330 ms; node 1 alone then
  // until 410 ms.
  Fabric fabric({shared(1e9)});
  NodeFibers fibers(fabric);
  const std::vector<std::uint32_t> route{0};
  std::vector<std::vector<double>> seen(2);
  for (int node = 0; node < 2; ++node)
    fibers.add([&, node] {
      double clock = 0;
      for (int step = 0; step < 2; ++step) {
        clock += node == 0 ? 0.01 : 0.05;
        clock = fibers.wait(fabric.start(clock, 0, 1e8, route, false));
        seen[std::size_t(node)].push_back(clock);
      }
    });
  fibers.run();
  ASSERT_EQ(seen[0].size(), 2u);
  ASSERT_EQ(seen[1].size(), 2u);
  expect_near_relative(seen[0][0], 0.17);
  expect_near_relative(seen[1][0], 0.24);
  expect_near_relative(seen[0][1], 0.33);
  expect_near_relative(seen[1][1], 0.41);
}

TEST(NodeFibers, ANodeThatThrowsEndsAloneAndItsErrorComesOutOnceAllHaveEnded) {
  Fabric fabric({shared(kGB)});
  NodeFibers fibers(fabric);
  const std::vector<std::uint32_t> route{0};
  double other_end = -1;
  fibers.add([&] {
    fibers.wait(fabric.start(0, 0, 1e6, route, false));
    throw std::runtime_error("node 0 failed");
  });
  fibers.add([&] {
    double clock = 0;
    for (int i = 0; i < 4; ++i) clock = fibers.wait(fabric.start(clock, 0, 1e6, route, false));
    other_end = clock;
  });
  EXPECT_THROW(
      try { fibers.run(); } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "node 0 failed");
        throw;
      },
      std::runtime_error);
  // Both shared the link for the first transfer (2 ms), then node 1 alone (3 x 1 ms).
  expect_near_relative(other_end, 2e-3 + 3e-3);
}

// A scheduler that finds nodes waiting with nothing in flight (two waiting for one flow: the second
// takes the wake-up) throws, and the node left waiting unwinds: its destructors run.
TEST(NodeFibers, NodesLeftWaitingUnwindWhenTheSchedulerFails) {
  Fabric fabric({shared(kGB)});
  NodeFibers fibers(fabric);
  const std::vector<std::uint32_t> route{0};
  Fabric::FlowId flow = 0;
  bool unwound = false;
  fibers.add([&] {
    struct Flag {
      bool& set;
      ~Flag() { set = true; }
    } flag{unwound};
    flow = fabric.start(0, 0, 1e6, route, false);
    fibers.wait(flow);
  });
  fibers.add([&] { fibers.wait(flow); });
  EXPECT_THROW(fibers.run(), std::logic_error);
  EXPECT_TRUE(unwound);
}

}  // namespace
}  // namespace rmai::sim
