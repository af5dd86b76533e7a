// The synthetic routing generator and its files (see generator.hpp).
#include "traces/generator.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <ostream>
#include <random>
#include <set>
#include <stdexcept>

#include "config/tree.hpp"
#include "config/errors.hpp"

namespace rmai::traces {
namespace {

// std::mt19937_64 output is fixed by the standard, but the standard distributions (and
// std::shuffle) are not: numbers are made from raw bits so a seed gives the same trace everywhere.
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;  // 53 random bits in [0, 1)
}

std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t n) {
  // Values at or above the last multiple of n are redrawn so every result is equally likely.
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t limit = kMax - kMax % n;
  for (;;)
    if (const std::uint64_t bits = rng(); bits < limit) return bits % n;
}

// Draws expert ids from relative weights, excluding the experts a row already holds.
class Sampler {
 public:
  template <typename Weights>
  explicit Sampler(const Weights& weights) : weight_(weights.size()), cumulative_(weights.size()) {
    double sum = 0;
    for (std::size_t e = 0; e < weight_.size(); ++e) cumulative_[e] = sum += weight_[e] = weights[e];
  }
  bool empty() const { return cumulative_.empty() || cumulative_.back() <= 0; }

  std::uint16_t draw(std::mt19937_64& rng, std::span<const std::uint16_t> taken) const {
    const auto is_taken = [&](std::size_t e) { return std::find(taken.begin(), taken.end(), e) != taken.end(); };
    // Bisection on the whole law and redrawing taken experts samples the restricted law exactly,
    // and is fast while the taken experts hold little of the mass...
    for (int attempt = 0; attempt < 16 && !empty(); ++attempt) {
      const double x = uniform01(rng) * cumulative_.back();
      std::size_t e = std::upper_bound(cumulative_.begin(), cumulative_.end(), x) - cumulative_.begin();
      e = std::min(e, cumulative_.size() - 1);  // x may round up to the total
      if (!is_taken(e)) return static_cast<std::uint16_t>(e);
    }
    // ...and when they hold most of it, a scan of the experts left samples the same law.
    double left = 0;
    for (std::size_t e = 0; e < weight_.size(); ++e)
      if (!is_taken(e)) left += weight_[e];
    if (left <= 0) {  // no weight left at all: any expert not taken, uniformly
      std::uint64_t pick = uniform_below(rng, weight_.size() - taken.size());
      for (std::size_t e = 0;; ++e)
        if (!is_taken(e) && pick-- == 0) return static_cast<std::uint16_t>(e);
    }
    double x = uniform01(rng) * left;
    std::size_t last = 0;
    for (std::size_t e = 0; e < weight_.size(); ++e) {
      if (is_taken(e) || weight_[e] <= 0) continue;
      last = e;
      if (x < weight_[e]) break;
      x -= weight_[e];
    }
    return static_cast<std::uint16_t>(last);
  }

 private:
  std::vector<double> weight_;
  std::vector<double> cumulative_;
};

bool valid_weights(const Eigen::Ref<const Eigen::VectorXd>& w) {
  return w.allFinite() && (w.array() >= 0).all();
}

// ---- file reading ----

[[noreturn]] void fail(const std::string& file, const YAML::Node& node, const std::string& key,
                       const std::string& what) {
  throw InputError(config::location(file, node, key), what);
}

void check_keys(const std::string& file, const YAML::Node& map, const std::string& path,
                const std::set<std::string>& allowed) {
  if (!map.IsMap()) fail(file, map, path, "expected a map");
  std::set<std::string> seen;
  for (const auto& kv : map) {
    const auto key = config::key_of(kv.first, file, path);
    const std::string dotted = path.empty() ? key : path + "." + key;
    if (!allowed.count(key)) {
      fail(file, kv.first, dotted,
           "unknown key (expected one of: " + config::join({allowed.begin(), allowed.end()}) + ")");
    }
    if (!seen.insert(key).second) fail(file, kv.first, dotted, "duplicate key");
  }
}

double number(const std::string& file, const YAML::Node& node, const std::string& key, double low, double high) {
  double value = 0;
  if (!node.IsScalar() || !YAML::convert<double>::decode(node, value) || !std::isfinite(value))
    fail(file, node, key, "expected a number");
  if (value < low || value > high)
    fail(file, node, key, std::to_string(value) + " out of range [" + std::to_string(low) + ", " +
                              std::to_string(high) + "]");
  return value;
}

std::uint32_t count(const std::string& file, const YAML::Node& node, const std::string& key, std::uint32_t high) {
  std::uint64_t value = 0;
  if (!node.IsScalar() || !YAML::convert<std::uint64_t>::decode(node, value) || value > high)
    fail(file, node, key, "expected an integer in 0.." + std::to_string(high));
  return static_cast<std::uint32_t>(value);
}

YAML::Node required(const std::string& file, const YAML::Node& map, const std::string& key, const std::string& path) {
  YAML::Node node = map[key];
  if (!node) fail(file, map, path.empty() ? key : path + "." + key, "missing key");
  return node;
}

Eigen::VectorXd weights(const std::string& file, const YAML::Node& node, const std::string& key,
                        std::uint32_t experts) {
  if (!node.IsSequence() || node.size() != experts)
    fail(file, node, key, "expected a list of " + std::to_string(experts) + " weights (one per expert)");
  Eigen::VectorXd w(experts);
  for (std::uint32_t e = 0; e < experts; ++e)
    w[e] = number(file, node[e], key + "[" + std::to_string(e) + "]", 0, std::numeric_limits<double>::max());
  return w;
}

Generator tabulated(const std::string& file, const YAML::Node& root, TraceShape shape) {
  Generator g;
  g.top_k = count(file, required(file, root, "top_k", ""), "top_k", 65536);
  g.experts = count(file, required(file, root, "experts", ""), "experts", 65536);
  const YAML::Node layers = required(file, root, "layers", "");
  if (!layers.IsSequence() || layers.size() == 0) fail(file, layers, "layers", "expected a list of layers");
  const TraceShape mine{static_cast<std::uint32_t>(layers.size()), g.top_k, g.experts};
  const auto describe = [](TraceShape s) {
    return std::to_string(s.layers) + " layers, top-" + std::to_string(s.top_k) + " of " + std::to_string(s.experts) +
           " experts";
  };
  if (!(mine == shape))
    fail(file, root, "", "this generator is tabulated for " + describe(mine) + " but the model has " + describe(shape));
  for (std::uint32_t l = 0; l < mine.layers; ++l) {
    const YAML::Node node = layers[l];
    const std::string path = "layers[" + std::to_string(l) + "]";
    check_keys(file, node, path, {"popularity", "reuse", "affinity"});
    GeneratorLayer layer;
    layer.popularity = weights(file, required(file, node, "popularity", path), path + ".popularity", g.experts);
    if (layer.popularity.sum() <= 0) fail(file, node["popularity"], path + ".popularity", "all weights are zero");
    layer.reuse = number(file, required(file, node, "reuse", path), path + ".reuse", 0, 1);
    if (const YAML::Node affinity = node["affinity"]) {
      const std::string at = path + ".affinity";
      check_keys(file, affinity, at, {"from", "weight", "transition"});
      layer.from = count(file, required(file, affinity, "from", at), at + ".from", 65536);
      if (*layer.from >= l) fail(file, affinity["from"], at + ".from", "must be an earlier layer than " + std::to_string(l));
      layer.affinity = number(file, required(file, affinity, "weight", at), at + ".weight", 0, 1);
      const YAML::Node rows = required(file, affinity, "transition", at);
      if (!rows.IsSequence() || rows.size() != g.experts)
        fail(file, rows, at + ".transition", "expected " + std::to_string(g.experts) + " rows (one per expert)");
      layer.transition.resize(g.experts, g.experts);
      for (std::uint32_t e = 0; e < g.experts; ++e)
        layer.transition.row(e) = weights(file, rows[e], at + ".transition[" + std::to_string(e) + "]", g.experts);
    }
    g.layers.push_back(std::move(layer));
  }
  return g;
}

void write_list(std::ostream& out, const Eigen::Ref<const Eigen::VectorXd>& values, int digits) {
  out << "[";
  char text[32];
  for (Eigen::Index i = 0; i < values.size(); ++i) {
    std::snprintf(text, sizeof text, "%.*g", digits, values[i]);
    out << (i ? ", " : "") << text;
  }
  out << "]";
}

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out + "\"";
}

}  // namespace

Generator zipf_generator(TraceShape shape, double exponent, double reuse, std::uint64_t seed) {
  validate(shape);
  if (!(exponent >= 0) || !std::isfinite(exponent)) throw std::invalid_argument("zipf exponent must be finite and >= 0");
  if (!(reuse >= 0 && reuse <= 1)) throw std::invalid_argument("reuse must be in [0, 1]");
  Generator g;
  g.top_k = shape.top_k;
  g.experts = shape.experts;
  std::mt19937_64 rng(seed);
  for (std::uint32_t l = 0; l < shape.layers; ++l) {
    // A seeded permutation gives each rank an expert, so the popular expert differs by layer.
    std::vector<std::uint32_t> by_rank(shape.experts);
    for (std::uint32_t i = 0; i < shape.experts; ++i) by_rank[i] = i;
    for (std::uint32_t i = shape.experts - 1; i > 0; --i)
      std::swap(by_rank[i], by_rank[uniform_below(rng, i + 1)]);  // Fisher-Yates
    GeneratorLayer layer;
    layer.popularity.resize(shape.experts);
    for (std::uint32_t rank = 0; rank < shape.experts; ++rank)
      layer.popularity[by_rank[rank]] = std::pow(static_cast<double>(rank + 1), -exponent);
    layer.popularity /= layer.popularity.sum();
    layer.reuse = reuse;
    g.layers.push_back(std::move(layer));
  }
  return g;
}

void validate(const Generator& g) {
  validate(g.shape());
  for (std::size_t l = 0; l < g.layers.size(); ++l) {
    const auto& layer = g.layers[l];
    const std::string at = "generator layer " + std::to_string(l) + ": ";
    if (layer.popularity.size() != g.experts || !valid_weights(layer.popularity) || layer.popularity.sum() <= 0)
      throw std::invalid_argument(at + "popularity needs one non-negative weight per expert, not all zero");
    if (!(layer.reuse >= 0 && layer.reuse <= 1)) throw std::invalid_argument(at + "reuse must be in [0, 1]");
    if (!layer.from) continue;
    if (*layer.from >= l) throw std::invalid_argument(at + "affinity must come from an earlier layer");
    if (!(layer.affinity >= 0 && layer.affinity <= 1)) throw std::invalid_argument(at + "affinity must be in [0, 1]");
    if (layer.transition.rows() != g.experts || layer.transition.cols() != g.experts ||
        !layer.transition.allFinite() || (layer.transition.array() < 0).any())
      throw std::invalid_argument(at + "transition must be experts x experts non-negative weights");
  }
}

Generator load_generator(const std::filesystem::path& path, TraceShape shape, std::uint64_t seed) {
  validate(shape);
  const std::string file = path.string();
  const YAML::Node root = config::load_yaml_file(path);
  check_keys(file, root, "",
             {"description", "source", "popularity", "zipf_exponent", "reuse", "top_k", "experts", "layers"});
  const YAML::Node kind = required(file, root, "popularity", "");
  const std::string popularity = kind.IsScalar() ? kind.Scalar() : "";
  const auto text = [&](const char* key) { return root[key] && root[key].IsScalar() ? root[key].Scalar() : ""; };
  const auto forbid = [&](std::initializer_list<const char*> keys) {
    for (const char* key : keys)
      if (root[key]) fail(file, root[key], key, "not used with popularity: " + popularity);
  };
  Generator g;
  if (popularity == "uniform" || popularity == "zipf") {
    forbid({"top_k", "experts", "layers"});
    if (popularity == "uniform") forbid({"zipf_exponent"});
    const double exponent =
        popularity == "zipf" ? number(file, required(file, root, "zipf_exponent", ""), "zipf_exponent", 0, 100) : 0;
    const double reuse = number(file, required(file, root, "reuse", ""), "reuse", 0, 1);
    g = zipf_generator(shape, exponent, reuse, seed);
  } else if (popularity == "table") {
    forbid({"zipf_exponent", "reuse"});
    g = tabulated(file, root, shape);
  } else {
    fail(file, kind, "popularity", "expected uniform, zipf or table");
  }
  g.description = text("description");
  g.source = text("source");
  return g;
}

void write_generator(const Generator& g, std::ostream& out) {
  validate(g);
  out << "# Routing generator (rmai trace gen --generator FILE); the format is in traces/generator.hpp.\n";
  out << "description: " << quoted(g.description) << "\n";
  if (!g.source.empty()) out << "source: " << quoted(g.source) << "\n";
  out << "popularity: table\ntop_k: " << g.top_k << "\nexperts: " << g.experts << "\nlayers:\n";
  for (std::size_t l = 0; l < g.layers.size(); ++l) {
    const auto& layer = g.layers[l];
    out << "  - # layer " << l << "\n    popularity: ";
    write_list(out, layer.popularity, 6);
    char reuse[32];
    std::snprintf(reuse, sizeof reuse, "%.6g", layer.reuse);
    out << "\n    reuse: " << reuse << "\n";
    if (!layer.from) continue;
    std::snprintf(reuse, sizeof reuse, "%.6g", layer.affinity);
    out << "    affinity:\n      from: " << *layer.from << "\n      weight: " << reuse << "\n      transition:\n";
    for (Eigen::Index e = 0; e < layer.transition.rows(); ++e) {
      out << "        - ";
      write_list(out, layer.transition.row(e).transpose(), 4);  // 4 digits: the files stay small
      out << "\n";
    }
  }
}

namespace {

// The generator's tokens one at a time: the state is the laws, the RNG and each sequence's previous
// token, so memory does not grow with the length of the trace.
class SyntheticSource final : public TraceSource {
 public:
  SyntheticSource(const Generator& g, std::uint64_t tokens, std::uint64_t seed, std::uint32_t sequences,
                  std::uint32_t prompt)
      : shape_(g.shape()), tokens_(tokens), sequences_(sequences), prompt_(prompt), rng_(seed) {
    validate(g);
    if (sequences == 0) throw std::invalid_argument("synthetic trace: at least one sequence");
    constexpr std::uint64_t kMax = std::numeric_limits<std::uint32_t>::max();
    // Checked in two steps so that the sum cannot overflow.
    if (tokens > kMax || tokens + std::uint64_t{prompt} * sequences > kMax)
      throw std::invalid_argument("synthetic trace: more than 2^32 - 1 tokens");
    // Every sequence gets its prompt, even one the decode tokens do not reach: the slots of the
    // round-robin run on to the last sequence then.
    slots_ = prompt > 0 ? std::max<std::uint64_t>(tokens, sequences) : tokens;
    transition_.resize(shape_.layers);  // per layer with affinity, per anchor
    for (std::uint32_t l = 0; l < shape_.layers; ++l) {
      const GeneratorLayer& layer = g.layers[l];
      layers_.push_back({layer.reuse, layer.from, layer.affinity});
      popularity_.emplace_back(layer.popularity);
      if (layer.from)
        for (std::uint32_t e = 0; e < shape_.experts; ++e) transition_[l].emplace_back(layer.transition.row(e));
    }
    // Sequences beyond the slots get no token, hence no previous token to hold.
    last_.resize(std::min<std::uint64_t>(sequences, slots_) * shape_.layers * shape_.top_k);
  }

  bool next(Token& token) override {
    // Slot t is decode token t (when t < tokens), preceded, when it is its sequence's first (t <
    // sequences), by the sequence's prompt.
    while (t_ < slots_) {
      const auto seq = static_cast<std::uint32_t>(t_ % sequences_);
      if (t_ < sequences_ && prefilled_ < prompt_) {
        draw(token, seq, prefilled_++, Phase::Prefill);
        return true;
      }
      prefilled_ = 0;
      const std::uint64_t t = t_++;
      if (t < tokens_) {
        draw(token, seq, static_cast<std::uint32_t>(prompt_ + t / sequences_), Phase::Decode);
        return true;
      }
    }
    return false;
  }

 private:
  // Draws the token at `index` of sequence `seq` from the RNG, after its previous token.
  void draw(Token& token, std::uint32_t seq, std::uint32_t index, Phase phase) {
    const std::size_t k = shape_.top_k;
    token.seq = seq;
    token.index = index;
    token.phase = phase;
    token.experts.resize(shape_.layers * k);
    token.weights.clear();
    std::uint16_t* previous = last_.data() + std::size_t{token.seq} * shape_.layers * k;
    for (std::uint32_t l = 0; l < shape_.layers; ++l) {
      const Layer& layer = layers_[l];
      std::uint16_t* row = token.experts.data() + l * k;
      std::size_t chosen = 0;
      if (token.index > 0)  // temporal locality: the previous token's experts are distinct, keep each or not
        for (std::size_t i = 0; i < k; ++i)
          if (uniform01(rng_) < layer.reuse) row[chosen++] = previous[l * k + i];
      for (; chosen < k; ++chosen) {
        const Sampler* from = &popularity_[l];
        if (layer.from && uniform01(rng_) < layer.affinity) {
          // The token's expert of the same rank at the source layer picks the transition row; a
          // row with no weight (an expert never seen there when fitting) falls back to popularity.
          const Sampler& row_law = transition_[l][token.experts[*layer.from * k + chosen]];
          if (!row_law.empty()) from = &row_law;
        }
        row[chosen] = from->draw(rng_, {row, chosen});
      }
    }
    std::copy(token.experts.begin(), token.experts.end(), previous);
  }

  struct Layer {
    double reuse;
    std::optional<std::uint32_t> from;
    double affinity;
  };

  TraceShape shape_;
  std::uint64_t tokens_;  // decode tokens to make
  std::uint32_t sequences_, prompt_;
  std::uint64_t slots_ = 0, t_ = 0;  // round-robin slots to go through, gone through
  std::uint32_t prefilled_ = 0;      // prompt tokens made of the sequence of slot t_
  std::mt19937_64 rng_;
  std::vector<Layer> layers_;
  std::vector<Sampler> popularity_;
  std::vector<std::vector<Sampler>> transition_;
  std::vector<std::uint16_t> last_;  // each sequence's previous token, valid once its index is > 0
};

}  // namespace

std::unique_ptr<TraceSource> synthetic_source(const Generator& generator, std::uint64_t tokens,
                                              std::uint64_t seed, std::uint32_t sequences,
                                              std::uint32_t prompt) {
  return std::make_unique<SyntheticSource>(generator, tokens, seed, sequences, prompt);
}

RoutingTrace generate(const Generator& generator, std::uint64_t tokens, std::uint64_t seed,
                      std::uint32_t sequences, std::uint32_t prompt) {
  const auto source = synthetic_source(generator, tokens, seed, sequences, prompt);
  return RoutingTrace::load(*source, generator.shape());
}

}  // namespace rmai::traces
