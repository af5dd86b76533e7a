#pragma once
// The declared parameters of every configurable component: experiments, platforms, hardware
// presets, paging tiers and MoE models. The YAML tree mirrors this tree; `rmai list` prints it.
#include <string>
#include <vector>

#include "config/tree.hpp"

namespace rmai::spec {

// The memory tiers an expert switch can go through (docs/architecture.md), in presentation order.
const std::vector<std::string>& tier_names();

namespace schema {
const config::Schema& experiment();
const config::Schema& platform();
const config::Schema& nic();
const config::Schema& pcie();
const config::Schema& gpu();
const config::Schema& dram();
const config::Schema& cxl();
const config::Schema& nvme();
const config::Schema& os();
const config::Schema& prices();
const config::Schema& moe_model();
const config::Schema& emul();
// Parameters of one tier's paging path, e.g. tier("rmai").
const config::Schema& tier(const std::string& name);
// Every schema, for `rmai list`.
std::vector<const config::Schema*> all();
}  // namespace schema

}  // namespace rmai::spec
