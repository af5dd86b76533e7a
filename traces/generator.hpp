#pragma once
// Synthetic routing: a seeded, deterministic generator of decode traces with
//  - per-layer expert popularity (the weights new experts are drawn with),
//  - temporal locality (each expert of the previous token at a layer is kept with prob. `reuse`),
//  - cross-layer affinity (a new expert of rank i is drawn, with prob. `affinity`, from a
//    transition row indexed by the token's rank-i expert at an earlier layer `from`).
// Generators are files (GEN.yaml): parametric ones (uniform or Zipf popularity, one reuse) fit any
// model; tabulated ones (written by `rmai trace fit`) hold per-layer tables for one model shape.
#include <Eigen/Core>

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "traces/trace.hpp"

namespace rmai::traces {

struct GeneratorLayer {
  Eigen::VectorXd popularity;  // draw weight by expert id, sums to 1
  double reuse = 0;            // probability of keeping each expert of the previous token here
  // Cross-layer affinity; none when `from` is empty.
  std::optional<std::uint32_t> from;  // an earlier layer
  double affinity = 0;                // probability that a new expert follows the transition
  Eigen::MatrixXd transition;         // experts x experts, row e: P(expert | rank peer at `from` is e)
};

struct Generator {
  std::string description;
  std::string source;  // where its numbers come from
  std::uint32_t top_k = 0;
  std::uint32_t experts = 0;
  std::vector<GeneratorLayer> layers;
  TraceShape shape() const { return {static_cast<std::uint32_t>(layers.size()), top_k, experts}; }
};

// Zipf popularity (weight ~ 1/rank^exponent; 0 is uniform) with a seeded expert order per layer,
// the same reuse at every layer, no affinity.
Generator zipf_generator(TraceShape shape, double exponent, double reuse, std::uint64_t seed);

// Checks sizes and ranges and normalizes the weights; throws std::invalid_argument.
void validate(const Generator& generator);

// A generator file for a trace shape: parametric files are instantiated for the shape (the seed
// orders the Zipf ranks); tabulated files must match it. Errors are InputErrors naming file:line.
Generator load_generator(const std::filesystem::path& path, TraceShape shape, std::uint64_t seed);

// Writes a tabulated generator file that load_generator reads back.
void write_generator(const Generator& generator, std::ostream& out);

// `tokens` decode tokens of `sequences` independent sequences, interleaved: decode token t
// belongs to sequence t mod sequences (its index prompt + t / sequences), so the sequences
// interleave round-robin. With a prompt, each sequence first has `prompt` prefill tokens (indices
// 0..prompt-1, Phase::Prefill), drawn by the same process as its decode tokens (they are its
// first tokens, so its locality carries into decode); they come right before the sequence's first
// decode token, or at the end, in sequence order, for a sequence that gets no decode token (tokens
// < sequences). The trace has tokens + prompt x sequences tokens; with prompt 0 it is the stream
// of before prompts existed. Experts are in rank order: kept experts first, in the previous
// token's order, then new ones in the order drawn. Deterministic for a seed on every platform (raw
// mt19937_64 bits, no standard distributions). Streamed: the source holds the generator's laws and
// each sequence's previous token (min(sequences, trace tokens) x layers x top_k x 2 bytes),
// whatever the length. Throws std::invalid_argument for an invalid generator, no sequence or a
// trace of more than 2^32 - 1 tokens.
std::unique_ptr<TraceSource> synthetic_source(const Generator& generator, std::uint64_t tokens,
                                              std::uint64_t seed, std::uint32_t sequences = 1,
                                              std::uint32_t prompt = 0);
// The same tokens in memory.
RoutingTrace generate(const Generator& generator, std::uint64_t tokens, std::uint64_t seed,
                      std::uint32_t sequences = 1, std::uint32_t prompt = 0);

}  // namespace rmai::traces
