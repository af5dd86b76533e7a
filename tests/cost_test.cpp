// The cost study's arithmetic: where each tier keeps the experts and what that costs per node.
#include <gtest/gtest.h>

#include <cmath>

#include "sim/cost.hpp"
#include "sim_support.hpp"

namespace {

using rmai::sim::capital_cost;

TEST(Cost, EachMediumFromThePrices) {
  const auto e = rmai::testing::quickstart({"platform.memory_servers=2", "nodes=4"});
  const auto& p = e.platform.prices;
  const double bytes = double(e.model.routed_experts_total()) * e.model.expert_bytes();  // 90.2 GB
  const double dram = bytes / 1e9 * p.dram_per_gb;
  auto at = [&](const std::string& tier) {
    auto copy = e;
    copy.tier = tier;
    copy.tier_definition = rmai::spec::find_tier(tier);
    return capital_cost(copy, 2.0);
  };
  EXPECT_DOUBLE_EQ(at("dram").memory_usd_per_node, dram);
  EXPECT_DOUBLE_EQ(at("cxl").memory_usd_per_node, std::ceil(bytes / p.cxl_device_capacity) * p.cxl_device + dram);
  EXPECT_DOUBLE_EQ(at("disk-read").memory_usd_per_node, bytes / 1e9 * p.nvme_per_gb);
  // The pool: this node's NIC and a quarter of two servers (each with a NIC) and of one copy.
  const double pool = p.rdma_nic + (2 * (p.memory_server + p.rdma_nic) + dram) / 4;
  EXPECT_DOUBLE_EQ(at("rmai").memory_usd_per_node, pool);
  EXPECT_DOUBLE_EQ(at("page4k").memory_usd_per_node, pool);
  // The CXL pool: this node's switch port and a quarter of one copy on the pool's devices.
  EXPECT_DOUBLE_EQ(at("cxl-pool").memory_usd_per_node,
                   p.cxl_pool_port + (std::ceil(bytes / p.cxl_device_capacity) * p.cxl_device + dram) / 4);
  // A million tokens at 2 tokens/s take 500,000 s of the write-off period.
  const auto cost = at("rmai");
  EXPECT_NEAR(cost.usd_per_million_tokens,
              (p.gpu_node + pool) * 5e5 / (p.amortization_years * 365.25 * 86400), 1e-9);
  EXPECT_EQ(capital_cost(e, 0).usd_per_million_tokens, 0);  // nothing decoded: no per-token figure
}

TEST(Cost, SharingSpreadsThePoolOverTheNodes) {
  const auto e = rmai::testing::quickstart({"nodes=16"});
  const auto& p = e.platform.prices;
  const double copy = double(e.model.routed_experts_total()) * e.model.expert_bytes() / 1e9 * p.dram_per_gb;
  const auto one = capital_cost(rmai::testing::quickstart({"nodes=1"}), 1.0).memory_usd_per_node;
  const auto many = capital_cost(e, 1.0).memory_usd_per_node;
  EXPECT_DOUBLE_EQ(one, p.rdma_nic + p.memory_server + p.rdma_nic + copy);  // one node pays the whole server
  EXPECT_DOUBLE_EQ(many, p.rdma_nic + (p.memory_server + p.rdma_nic + copy) / 16);
  const auto private_copy = capital_cost(rmai::testing::quickstart({"memory.tier=dram"}), 1.0).memory_usd_per_node;
  // The prices are parameters: doubling DRAM doubles the private copy.
  const auto dearer =
      capital_cost(rmai::testing::quickstart({"memory.tier=dram", "platform.prices.dram_per_gb=37.6"}), 1.0);
  EXPECT_DOUBLE_EQ(dearer.memory_usd_per_node, 2 * private_copy);
}

}  // namespace
