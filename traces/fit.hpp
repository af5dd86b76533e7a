#pragma once
// Fitting a generator (generator.hpp) to routing statistics: from a trace (`rmai trace fit TRACE`)
// or from expert count tables such as models/routing/*.csv (`rmai trace fit --counts`).
//
// The targets are per-layer popularity, per-layer adjacent reuse and rank-matched expert pair
// counts between layers. Transitions are the smoothed conditional pair frequencies. Because experts
// are drawn without replacement, kept from the previous token or steered by the transitions, the
// generator's output popularity is not its input weights: the fit generates a calibration trace,
// compares, and corrects a per-layer tilt of the weights (and the reuse) until they agree.
#include <Eigen/Core>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "traces/generator.hpp"
#include "traces/stats.hpp"

namespace rmai::traces {

struct FitTargets {
  TraceShape shape{};
  std::vector<Eigen::VectorXd> popularity;  // per layer: share of assignments per expert
  std::vector<double> reuse;                // per layer: observed adjacent reuse
  std::vector<std::uint32_t> measured;      // layers whose popularity was measured (not filled in)
  struct Pairs {
    std::uint32_t from = 0, to = 0;
    Eigen::MatrixXd counts;  // (rank-i expert at `from`, rank-i expert at `to`) counts
  };
  std::vector<Pairs> pairs;  // at most one per `to` layer, from < to
  std::string source;        // what the targets were measured on, for the generator file
};

struct FitOptions {
  std::uint64_t calibration_tokens = 20000;
  int iterations = 12;
  std::uint64_t seed = 1;
  // Pseudo-observations added to each transition row, spread by the target layer's popularity, so
  // a row seen a few times in a short trace does not become a hard rule.
  double smoothing = 1;
};

// Targets measured on a trace: every layer, with pairs (l-1 -> l).
FitTargets targets_of(const RoutingCounts& counts);

// Count tables: CSV files with a header. The counts file has the columns layer, expert, count; the
// pairs file layer_from, layer_to, expert_from, expert_to, count. Other columns select rows
// (`where`: column -> value, all must match; a column in neither file is an error) and the rows
// left are summed. Layers without counts take the popularity of the nearest measured layer with
// its experts shuffled (seeded): the skew of that depth, not its expert identities. Every layer
// gets `reuse` (the tables hold no temporal information). Errors are InputErrors (file:line).
FitTargets targets_from_tables(const std::filesystem::path& counts, const std::filesystem::path& pairs,
                               const std::map<std::string, std::string>& where, TraceShape shape, double reuse,
                               std::uint64_t seed);

Generator fit(const FitTargets& targets, const FitOptions& options = {});

}  // namespace rmai::traces
