#pragma once
// The declared parameters of every configurable component: experiments, platforms, hardware
// presets, paging tiers and MoE models. The YAML tree mirrors this tree; `rmai list` prints it.
#include <string>
#include <vector>

#include "config/tree.hpp"

namespace rmai::spec {

namespace schema {
const config::Schema& experiment();
const config::Schema& platform();
const config::Schema& nic();
const config::Schema& pcie();
const config::Schema& gpu();
const config::Schema& dram();
const config::Schema& cxl();
const config::Schema& cxl_pool();
const config::Schema& nvme();
const config::Schema& os();
const config::Schema& prices();
const config::Schema& moe_model();
const config::Schema& emul();
// Every schema, for `rmai list`.
std::vector<const config::Schema*> all();
}  // namespace schema

}  // namespace rmai::spec
