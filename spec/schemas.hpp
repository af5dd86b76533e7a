#pragma once
// The declared parameters of every configurable component: experiments, platforms, hardware
// presets, paging tiers and MoE models. The YAML tree mirrors this tree; `rmai list` prints it.
#include <string>
#include <vector>

#include "config/tree.hpp"

namespace rmai::spec {

// Bounds of the experiment's sizes (docs/interfaces.md, "Bounds on input sizes"): what a run may
// ask of this machine before anything is allocated.
inline constexpr double kMaxNodes = 4096;
inline constexpr double kMaxPoolPorts = 64;  // CXL pool ports: a route per port and node
// Entries (token x MoE layer x routed expert) of a synthetic trace, which a run holds in memory at
// 2 bytes each: 2^27 is 256 MiB.
inline constexpr double kMaxTraceEntries = 134217728;
// Serving: sequences in one decode step, prompt tokens per sequence, tokens of context. A step's
// bookkeeping grows with batch x top_k; prompts add to the trace's entries (bounded above).
inline constexpr double kMaxBatch = 4096;
inline constexpr double kMaxPrompt = 1 << 20;
inline constexpr double kMaxContext = 1 << 24;

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
const config::Schema& serving();
const config::Schema& sim();
// Every schema, for `rmai list`.
std::vector<const config::Schema*> all();
}  // namespace schema

}  // namespace rmai::spec
