// Replay speed of the simulator in expert accesses per second of wall time: Mixtral-8x7B decode
// traces of 16384 tokens (about a million (token, layer, expert) accesses) on the shipped defaults.
// Each iteration runs in a fresh child process (SimGrid allows one engine per process), and the
// measured time includes engine and platform set-up.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "traces/experiment_trace.hpp"
#include "sim/replay.hpp"

namespace {

const std::string kQuickstart = std::string(RMAI_SOURCE_DIR) + "/experiments/quickstart.yaml";

void replay(benchmark::State& state, const std::string& tier, int tokens, int nodes) {
  const auto e = rmai::spec::load_experiment(
      kQuickstart, {"memory.tier=" + tier, "trace.tokens=" + std::to_string(tokens), "nodes=" + std::to_string(nodes)});
  const auto trace = rmai::traces::experiment_trace(e);
  const double accesses = double(tokens) * nodes * e.model.moe_layers * e.model.top_k;
  double total = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid == 0) {
      rmai::sim::simulate(e, trace, {});
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("simulation failed");
    state.SetIterationTime(seconds);
    total += seconds;
  }
  state.counters["expert_accesses"] = accesses;
  state.counters["accesses_per_s"] = accesses * double(state.iterations()) / total;
}

}  // namespace

// Every registered tier on one node, and the default tier (the paper's path) with 8 nodes sharing
// one server.
int main(int argc, char** argv) {
  for (const auto& tier : rmai::spec::tiers())
    benchmark::RegisterBenchmark((tier.name + "_16k_tokens").c_str(), replay, tier.name, 16384, 1)
        ->UseManualTime()->Unit(benchmark::kSecond)->Iterations(2);
  const std::string shared = rmai::spec::default_tier().name;
  benchmark::RegisterBenchmark((shared + "_8_nodes_2k_tokens").c_str(), replay, shared, 2048, 8)
      ->UseManualTime()->Unit(benchmark::kSecond)->Iterations(2);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
