#pragma once
// Parameter sweeps: the `sweep:` and `quick:` blocks of an experiment YAML and `--sweep key=v1,v2`.
//
//   sweep:                                  # cartesian product; the first key varies slowest
//     memory.tier: [dram, cxl, rmai]
//     "model,cache.gpu_experts":            # comma-joined keys: the values advance together
//       - [mixtral-8x7b, 64]
//       - [olmoe-1b-7b, 256]
//   quick:                                  # applied with --quick
//     trace.tokens: 128                     # dotted keys: --set overrides
//     sweep: {memory.tier: [rmai]}          # replaces the value lists of the keys it names
//
// A point is a list of `key=value` assignments, applied with config::apply_set on top of the file.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace rmai::spec {

// The largest sweep expanded unless asked otherwise (`rmai sweep --max-points`): a few bytes of
// YAML with aliases can name millions of points (docs/interfaces.md, "Bounds on input sizes").
inline constexpr std::uint64_t kMaxSweepPoints = 10000;

// One axis of the product: one key, or several keys whose values advance together.
struct SweepDimension {
  std::vector<std::string> keys;
  std::vector<std::vector<std::string>> values;  // one tuple (a value per key) per step
  std::string where;                             // "file:line: key" or "--sweep: key", for errors
};

struct SweepSpec {
  std::filesystem::path experiment;
  std::vector<std::string> sets;             // the quick block's overrides (only with quick)
  std::vector<SweepDimension> dimensions;    // the first varies slowest
  std::uint64_t max_points = kMaxSweepPoints;  // expand() refuses a larger product
};

struct SweepPoint {
  std::string name;                       // p0000, p0001, ...: the index in the expansion
  std::vector<std::string> assignments;   // key=value, in dimension order
  std::vector<std::size_t> steps;         // the index of this point's value in each dimension
};

// Reads the sweep and quick blocks of `experiment` (quick: apply the quick block), then adds or
// replaces dimensions from `cli_sweeps` ("key=v1,v2,..."). Keys are checked against the experiment
// schema. Throws InputError naming file:line and the key.
SweepSpec load_sweep(const std::filesystem::path& experiment, bool quick, const std::vector<std::string>& cli_sweeps);

// The number of points of the product (saturating at UINT64_MAX), computed without expanding.
std::uint64_t point_count(const SweepSpec& spec);

// The points of the product in order. No dimensions: one point without assignments. Throws
// InputError when there are more than spec.max_points, before expanding anything.
std::vector<SweepPoint> expand(const SweepSpec& spec);

}  // namespace rmai::spec
