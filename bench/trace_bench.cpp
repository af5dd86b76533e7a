// Reading speed of trace files in tokens per second: the same Mixtral-shape trace (32 MoE layers,
// top-2 of 8 experts, 100k tokens) as canonical CSV (open_csv) and in the binary form
// (open_trace), with and without gate weights. Files go to a temporary directory, made once.
// After the runs, prints how many times faster the binary reader is.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "traces/trace.hpp"

namespace {

namespace fs = std::filesystem;
using rmai::traces::TraceShape;

constexpr TraceShape kShape{32, 2, 8};
constexpr std::uint32_t kTokens = 100'000;

const fs::path kDir =
    fs::temp_directory_path() / ("rmai_trace_bench_" + std::to_string(::getpid()));

// A random trace of one sequence; the routing pattern does not matter to the readers, only the
// sizes of the fields (expert ids of one digit, weights of about ten characters).
rmai::traces::RoutingTrace make_trace(bool weights) {
  rmai::traces::RoutingTrace trace(kShape);
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int> expert(0, kShape.experts - 1);
  std::uniform_real_distribution<float> gate(0.5f, 1.0f);
  rmai::traces::Token token{0, 0, std::vector<std::uint16_t>(kShape.layers * kShape.top_k), {}};
  if (weights) token.weights.resize(token.experts.size());
  for (std::uint32_t t = 0; t < kTokens; ++t) {
    token.index = t;
    for (std::uint32_t layer = 0; layer < kShape.layers; ++layer) {
      const int first = expert(rng);
      const int second = (first + 1 + expert(rng) % (kShape.experts - 1)) % kShape.experts;
      token.experts[2 * layer] = static_cast<std::uint16_t>(first);
      token.experts[2 * layer + 1] = static_cast<std::uint16_t>(second);
      if (weights) {
        token.weights[2 * layer] = gate(rng);
        token.weights[2 * layer + 1] = 1.0f - token.weights[2 * layer];
      }
    }
    trace.append(token);
  }
  return trace;
}

fs::path file(bool binary, bool weights) {
  return kDir / (std::string(weights ? "weights" : "plain") + (binary ? ".rmtrace" : ".csv"));
}

void make_files() {
  static const bool made = [] {
    for (const bool weights : {false, true}) {
      const auto trace = make_trace(weights);
      rmai::traces::save_trace(file(false, weights), trace);
      rmai::traces::save_trace(file(true, weights), trace);
    }
    return true;
  }();
  (void)made;
}

double rates[2][2];  // tokens/s by [binary][weights], for the ratio printed at the end

void read(benchmark::State& state, bool binary, bool weights) {
  make_files();
  const fs::path path = file(binary, weights);
  std::uint64_t tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto source =
        binary ? rmai::traces::open_trace(path, kShape) : rmai::traces::open_csv(path, kShape);
    rmai::traces::Token token{};
    while (source->next(token)) ++tokens;
    benchmark::DoNotOptimize(token);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (tokens != std::uint64_t{kTokens} * static_cast<std::uint64_t>(state.iterations()))
    state.SkipWithError("wrong token count");
  rates[binary][weights] = double(tokens) / seconds;
  state.counters["tokens_per_s"] = benchmark::Counter(double(tokens), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<std::int64_t>(fs::file_size(path)) * state.iterations());
}

}  // namespace

BENCHMARK_CAPTURE(read, csv, false, false)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(read, binary, true, false)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(read, csv_weights, false, true)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(read, binary_weights, true, true)->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (const bool weights : {false, true})
    if (rates[0][weights] > 0 && rates[1][weights] > 0)
      std::printf("binary / csv%s: %.1fx (%.3g vs %.3g tokens/s)\n", weights ? " with weights" : "",
                  rates[1][weights] / rates[0][weights], rates[1][weights], rates[0][weights]);
  std::error_code error;
  fs::remove_all(kDir, error);
  return 0;
}
