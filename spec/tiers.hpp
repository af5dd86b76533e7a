#pragma once
// The memory tiers an expert switch can go through. Each tier is defined once, by the `tier:` block
// of its preset file models/tiers/<name>.yaml: everything that is true of it whatever the mode (its
// label, what its path is, the medium that holds the experts, its parameters, and why the emulator
// has no store for it, if it has none). The simulator's path (sim/tiers/) and the emulator's store
// (emul/stores/) register under the same name; tests check that every tier has both or says why
// not. No other file lists the tiers: schemas, capacity and cost, validation, `rmai list` and the
// plots (through `rmai list tiers --json`) take them from here. docs/adding-a-tier.md says how to
// add one.
#include <filesystem>
#include <string>
#include <vector>

#include "config/tree.hpp"

namespace rmai::spec {

// The key of a tier preset's definition block (config::Schema::definition_key).
inline constexpr const char* kTierDefinitionKey = "tier";

// What holds a tier's experts. The medium decides whether one copy serves every node (a pool) or
// each node holds its own, which capacity must hold the experts, which `bytes` counter of the
// results the switches fill, and how the memory is priced (sim/cost.cpp).
enum class Medium {
  HostDram,    // a private copy in each node's host DRAM
  CxlDevices,  // a private copy on each node's CXL expander
  CxlPool,     // one copy in a CXL memory pool that every node reaches through its own port
  RemotePool,  // one copy in the memory servers' DRAM, reached over RDMA
  Nvme,        // a private copy on each node's NVMe drive
};

// The result counter (metrics::TierBytes) that a switch's bytes from the medium fill, besides pcie.
enum class BytesFrom { None, Remote, Disk, Cxl };

struct MediumInfo {
  Medium medium;
  const char* name;         // as written in a tier definition
  const char* description;
  bool shared;              // one copy for every node
  BytesFrom bytes;
};
const std::vector<MediumInfo>& media();
const MediumInfo& medium_info(Medium medium);

struct TierDefinition {
  std::string name;         // memory.tier, and the file's stem
  std::string label;        // in tables and figures
  std::string colour;       // in figures
  std::string path;         // what a switch does, in one line
  Medium medium = Medium::HostDram;
  std::string no_emulation;  // empty: the emulator has a store of this name; else why it has none
  bool is_default = false;   // memory.tier when an experiment names none
  config::Schema schema;    // the tier's parameters: memory.<name>.*
  std::string file;         // the preset file that defines it
  const MediumInfo& medium_info() const { return spec::medium_info(medium); }
};

// The definitions of the tier presets in `dir`, in presentation order. Throws InputError.
std::vector<TierDefinition> load_tiers(const std::filesystem::path& dir);

// Every tier, in presentation order (`order:` of the definitions), read once from models/tiers/.
// A malformed definition is an InputError naming its file and line.
const std::vector<TierDefinition>& tiers();
// nullptr for an unknown name.
const TierDefinition* find_tier(const std::string& name);
std::vector<std::string> tier_names();
const TierDefinition& default_tier();

}  // namespace rmai::spec
