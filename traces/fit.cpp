// Fitting generators to traces and count tables (see fit.hpp).
#include "traces/fit.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <random>
#include <set>
#include <stdexcept>

#include "config/errors.hpp"
#include "config/tree.hpp"

namespace rmai::traces {
namespace {

// ---- count tables ----

struct Table {
  std::string file;
  std::vector<std::string> columns;
  struct Row {
    std::size_t line;
    std::vector<std::string> fields;
  };
  std::vector<Row> rows;

  std::string where(std::size_t line) const { return file + ":" + std::to_string(line); }
  std::ptrdiff_t find(const std::string& name) const {
    const auto it = std::find(columns.begin(), columns.end(), name);
    return it == columns.end() ? -1 : it - columns.begin();
  }
  std::size_t column(const std::string& name) const {
    const auto index = find(name);
    if (index < 0) {
      throw InputError(where(1), "no column '" + name + "' (header: " + config::join(columns, ",") + ")");
    }
    return static_cast<std::size_t>(index);
  }
};

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> fields(1);
  for (const char c : line)
    if (c == ',')
      fields.emplace_back();
    else if (c != '\r')
      fields.back() += c;
  return fields;
}

Table read_table(const std::filesystem::path& path) {
  Table table{path.string(), {}, {}};
  std::ifstream in(path);
  if (!in || std::filesystem::is_directory(path)) throw InputError(table.file, "cannot open the count table");
  std::string line;
  if (!std::getline(in, line) || line.empty()) throw InputError(table.where(1), "empty file: expected a CSV header");
  table.columns = split(line);
  for (std::size_t number = 2; std::getline(in, line); ++number) {
    if (line.empty() || line == "\r") continue;
    auto fields = split(line);
    if (fields.size() != table.columns.size())
      throw InputError(table.where(number), "row has " + std::to_string(fields.size()) + " fields, the header " +
                                                std::to_string(table.columns.size()));
    table.rows.push_back({number, std::move(fields)});
  }
  return table;
}

// A non-negative integer field below `limit` (`unit` names what the limit counts).
std::uint64_t integer(const Table& table, const Table::Row& row, std::size_t column, std::uint64_t limit = UINT64_MAX,
                      const char* unit = "") {
  const std::string& text = row.fields[column];
  std::uint64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size())
    throw InputError(table.where(row.line), table.columns[column] + " '" + text + "' is not a non-negative integer");
  if (value >= limit)
    throw InputError(table.where(row.line),
                     table.columns[column] + " " + text + " out of range: the model has " + std::to_string(limit) + unit);
  return value;
}

bool selected(const Table& table, const Table::Row& row, const std::map<std::string, std::string>& where) {
  for (const auto& [column, value] : where)
    if (const auto index = table.find(column); index >= 0 && row.fields[index] != value) return false;
  return true;
}

std::string describe(const std::map<std::string, std::string>& where) {
  std::vector<std::string> items;
  for (const auto& [column, value] : where) items.push_back(column + "=" + value);
  return items.empty() ? "all rows" : config::join(items);
}

// ---- calibration ----

// The chance that a token drawn from `popularity` repeats one of the previous token's experts:
// about k * sum p^2 (capped): the part of adjacent reuse that needs no temporal locality.
double chance_reuse(const Eigen::VectorXd& popularity, std::uint32_t top_k) {
  return std::min(0.95, top_k * popularity.squaredNorm());
}

constexpr double kMinInformationBits = 0.02;

// (rank-i expert at `from`, rank-i expert at `to`) counts of a trace.
Eigen::MatrixXd rank_pairs(const RoutingTrace& trace, std::uint32_t from, std::uint32_t to) {
  const TraceShape& shape = trace.shape();
  Eigen::MatrixXd pairs = Eigen::MatrixXd::Zero(shape.experts, shape.experts);
  for (std::size_t t = 0; t < trace.tokens(); ++t) {
    const auto a = trace.experts(t, from), b = trace.experts(t, to);
    for (std::size_t i = 0; i < shape.top_k; ++i) pairs(a[i], b[i]) += 1;
  }
  return pairs;
}

// The generator for the current calibration: weights tilted, transitions sharpened (power) and tilted.
Generator build(const FitTargets& t, const std::vector<Eigen::MatrixXd>& transitions,
                const std::vector<std::ptrdiff_t>& pair_of, const std::vector<Eigen::VectorXd>& tilt,
                const std::vector<double>& sharpen, const std::vector<double>& reuse) {
  Generator g;
  g.top_k = t.shape.top_k;
  g.experts = t.shape.experts;
  for (std::uint32_t l = 0; l < t.shape.layers; ++l) {
    GeneratorLayer layer;
    layer.popularity = t.popularity[l].cwiseProduct(tilt[l]);
    layer.popularity /= layer.popularity.sum();
    layer.reuse = reuse[l];
    if (pair_of[l] >= 0) {
      layer.from = t.pairs[pair_of[l]].from;
      layer.affinity = 1;
      layer.transition = transitions[l].array().pow(sharpen[l]).matrix() * tilt[l].asDiagonal();
      for (Eigen::Index e = 0; e < layer.transition.rows(); ++e)
        if (const double sum = layer.transition.row(e).sum(); sum > 0) layer.transition.row(e) /= sum;
    }
    g.layers.push_back(std::move(layer));
  }
  return g;
}

}  // namespace

FitTargets targets_of(const RoutingCounts& counts) {
  const TraceShape& shape = counts.shape();
  FitTargets t;
  t.shape = shape;
  const double pairs = double(counts.adjacent_pairs());
  for (std::uint32_t l = 0; l < shape.layers; ++l) {
    const Eigen::VectorXd assigned = counts.assignments().row(l).transpose();
    t.popularity.push_back(assigned.sum() > 0 ? Eigen::VectorXd(assigned / assigned.sum())
                                              : Eigen::VectorXd::Constant(shape.experts, 1.0 / shape.experts));
    t.reuse.push_back(pairs > 0 ? counts.reuse_sum()[l] / pairs : 0);
    t.measured.push_back(l);
    if (l > 0) t.pairs.push_back({l - 1, l, counts.rank_pairs()[l - 1]});
  }
  return t;
}

FitTargets targets_from_tables(const std::filesystem::path& counts_file, const std::filesystem::path& pairs_file,
                               const std::map<std::string, std::string>& where, TraceShape shape, double reuse,
                               std::uint64_t seed) {
  validate(shape);
  if (!(reuse >= 0 && reuse <= 1)) throw InputError("--reuse", "must be in [0, 1]");
  const Table counts = read_table(counts_file);
  std::optional<Table> pairs;
  if (!pairs_file.empty()) pairs = read_table(pairs_file);
  for (const auto& [column, value] : where)
    if (counts.find(column) < 0 && (!pairs || pairs->find(column) < 0))
      throw InputError("--where " + column + "=" + value, "no such column in the count tables");

  FitTargets t;
  t.shape = shape;
  t.source = counts.file + (pairs ? " and " + pairs->file : "") + " (" + describe(where) + ")";
  std::vector<Eigen::VectorXd> measured(shape.layers, Eigen::VectorXd::Zero(shape.experts));
  const std::size_t layer = counts.column("layer"), expert = counts.column("expert"), count = counts.column("count");
  for (const auto& row : counts.rows) {
    if (!selected(counts, row, where)) continue;
    const auto l = integer(counts, row, layer, shape.layers, " MoE layers");
    measured[l][integer(counts, row, expert, shape.experts, " experts")] += double(integer(counts, row, count));
  }
  for (std::uint32_t l = 0; l < shape.layers; ++l)
    if (measured[l].sum() > 0) t.measured.push_back(l);
  if (t.measured.empty()) throw InputError(counts.file, "no row with a count matches " + describe(where));

  // Layers without counts: the nearest measured layer's popularity with its experts shuffled.
  std::mt19937_64 rng(seed);
  for (std::uint32_t l = 0; l < shape.layers; ++l) {
    if (measured[l].sum() > 0) {
      t.popularity.push_back(measured[l] / measured[l].sum());
      continue;
    }
    std::uint32_t nearest = t.measured.front();
    for (const auto m : t.measured)
      if (std::abs(double(m) - l) < std::abs(double(nearest) - l)) nearest = m;
    Eigen::VectorXd p = measured[nearest] / measured[nearest].sum();
    for (Eigen::Index i = p.size() - 1; i > 0; --i) std::swap(p[i], p[static_cast<Eigen::Index>(rng() % (i + 1))]);
    t.popularity.push_back(p);
  }
  t.reuse.assign(shape.layers, reuse);

  if (pairs) {
    const std::size_t from = pairs->column("layer_from"), to = pairs->column("layer_to"),
                      expert_from = pairs->column("expert_from"), expert_to = pairs->column("expert_to"),
                      pair_count = pairs->column("count");
    std::map<std::pair<std::uint64_t, std::uint64_t>, Eigen::MatrixXd> found;
    for (const auto& row : pairs->rows) {
      if (!selected(*pairs, row, where)) continue;
      const auto a = integer(*pairs, row, from, shape.layers, " MoE layers");
      const auto b = integer(*pairs, row, to, shape.layers, " MoE layers");
      if (a >= b) throw InputError(pairs->where(row.line), "layer_from must be below layer_to");
      auto [it, fresh] = found.try_emplace({a, b}, Eigen::MatrixXd::Zero(shape.experts, shape.experts));
      it->second(integer(*pairs, row, expert_from, shape.experts, " experts"),
                 integer(*pairs, row, expert_to, shape.experts, " experts")) += double(integer(*pairs, row, pair_count));
    }
    std::set<std::uint64_t> targets;
    for (auto& [layers, matrix] : found) {
      if (!targets.insert(layers.second).second)
        throw InputError(pairs->file, "layer " + std::to_string(layers.second) +
                                          " has pairs from two layers; a generator layer follows one source");
      t.pairs.push_back({static_cast<std::uint32_t>(layers.first), static_cast<std::uint32_t>(layers.second),
                         std::move(matrix)});
    }
  }
  return t;
}

Generator fit(const FitTargets& t, const FitOptions& o) {
  const TraceShape shape = t.shape;
  validate(shape);
  if (t.popularity.size() != shape.layers || t.reuse.size() != shape.layers)
    throw std::invalid_argument("fit: targets need one popularity and one reuse per layer");

  // Transitions: the smoothed conditional frequencies of the pair counts, one source per layer.
  std::vector<std::ptrdiff_t> pair_of(shape.layers, -1);
  std::vector<Eigen::MatrixXd> transitions(shape.layers);
  for (std::size_t i = 0; i < t.pairs.size(); ++i) {
    const auto& pair = t.pairs[i];
    if (pair.from >= pair.to || pair.to >= shape.layers || pair_of[pair.to] >= 0)
      throw std::invalid_argument("fit: pairs need from < to < layers, one source per layer");
    pair_of[pair.to] = static_cast<std::ptrdiff_t>(i);
    transitions[pair.to] = pair.counts;
    transitions[pair.to].rowwise() += o.smoothing * t.popularity[pair.to].transpose();
  }

  std::vector<Eigen::VectorXd> tilt(shape.layers, Eigen::VectorXd::Ones(shape.experts));
  // Reuse keeps experts that ignore the transition, which dilutes the cross-layer dependence; a
  // per-layer power on the transition rows restores the measured mutual information.
  std::vector<double> sharpen(shape.layers, 1.0), target_information(shape.layers, 0.0);
  for (const auto& pair : t.pairs) target_information[pair.to] = mutual_information_bits(pair.counts);
  std::vector<double> chance(shape.layers), reuse(shape.layers);
  for (std::uint32_t l = 0; l < shape.layers; ++l) {
    chance[l] = chance_reuse(t.popularity[l], shape.top_k);
    reuse[l] = std::clamp((t.reuse[l] - chance[l]) / (1 - chance[l]), 0.0, 1.0);
  }
  for (int iteration = 0; iteration < o.iterations; ++iteration) {
    const RoutingTrace trace = generate(build(t, transitions, pair_of, tilt, sharpen, reuse), o.calibration_tokens, o.seed);
    const RoutingCounts got = RoutingCounts::of(trace, {});
    for (std::uint32_t l = 0; l < shape.layers; ++l) {
      const Eigen::VectorXd achieved = got.assignments().row(l).transpose() / got.assignments().row(l).sum();
      for (Eigen::Index e = 0; e < achieved.size(); ++e) {
        const double ratio = achieved[e] > 0 ? t.popularity[l][e] / achieved[e] : (t.popularity[l][e] > 0 ? 4 : 1);
        tilt[l][e] *= std::clamp(ratio, 0.25, 4.0);
      }
      tilt[l] /= tilt[l].mean();
      const double reuse_got = got.adjacent_pairs() ? got.reuse_sum()[l] / double(got.adjacent_pairs()) : 0;
      reuse[l] = std::clamp(reuse[l] + (t.reuse[l] - reuse_got) / (1 - chance[l]), 0.0, 1.0);
      // Only a dependence clearly above the estimator's noise is matched: sharpening a table of
      // noise would turn it into false rules.
      if (pair_of[l] >= 0 && target_information[l] > kMinInformationBits) {
        const double got_information =
            mutual_information_bits(rank_pairs(trace, t.pairs[pair_of[l]].from, l));
        const double ratio = got_information > 0 ? target_information[l] / got_information : 2;
        sharpen[l] = std::clamp(sharpen[l] * std::sqrt(std::clamp(ratio, 0.5, 2.0)), 0.5, 3.0);
      }
    }
  }
  Generator g = build(t, transitions, pair_of, tilt, sharpen, reuse);
  g.description = "fitted by rmai trace fit";
  g.source = t.source;
  return g;
}

}  // namespace rmai::traces
