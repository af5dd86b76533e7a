// Replay speed of the simulator in expert accesses per second of wall time, on Mixtral-8x7B decode
// traces of the shipped defaults (16384 tokens on one node: about a million (token, layer, expert)
// accesses), and the ratios issue-sized goals are stated in, measured in the same run so that a
// loaded machine moves both sides alike:
//   fast_over_plain      one node, the fast path (sim.fast_path) against every transfer a comm
//   one_node_over_raw    one node against SimGrid's own rate of sequential comms on one link
//   64_nodes_over_1      64 nodes sharing one server against one node, per access
//   rss_16M_over_1M      peak memory of one node replaying 262144 tokens (16M accesses) against
//                        16384 (1M): flat in trace length is 1 (a child's peak includes the pages
//                        of the parent it shares: raw_simgrid_comms's peak bounds them)
// Each iteration runs in a fresh child process (SimGrid allows one engine per process); the time
// includes engine and platform set-up, not writing the results; the trace is spilled (generated
// into its temporary file) before, in the parent.
#include <benchmark/benchmark.h>
#include <simgrid/s4u.hpp>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <cstdio>
#include <functional>
#include <map>
#include <string>

#include "traces/experiment_trace.hpp"
#include "sim/replay.hpp"

namespace {

const std::string kQuickstart = std::string(RMAI_SOURCE_DIR) + "/experiments/quickstart.yaml";
std::map<std::string, double> g_rates;  // accesses (or comms) per second, by benchmark
std::map<std::string, double> g_peak_rss;  // the children's largest peak resident set, bytes
std::filesystem::path g_scratch;           // where a run's switch log has its (empty) file

// Times `work` in a child process, once per iteration; `units` is what one run does.
void time_in_child(benchmark::State& state, const std::string& name, double units, const std::function<void()>& work) {
  double total = 0;
  bool failed = false;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid == 0) {
      work();
      _exit(0);
    }
    int status = 0;
    rusage usage{};
    if (pid < 0 || wait4(pid, &status, 0, &usage) != pid) status = -1;  // counts as failed below
    g_peak_rss[name] = std::max(g_peak_rss[name], double(usage.ru_maxrss) * 1024);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      state.SkipWithError("the child failed");
      failed = true;
      break;
    }
    state.SetIterationTime(seconds);
    total += seconds;
  }
  if (failed) return;  // no rate: a ratio of a failed run's time would mean nothing (ratio() skips it)
  g_rates[name] = units * double(state.iterations()) / total;
  state.counters["per_s"] = g_rates[name];
  state.counters["peak_rss_MB"] = g_peak_rss[name] / 1e6;
}

void replay(benchmark::State& state, const std::string& name, const std::string& tier, int tokens, int nodes,
            bool fast_path) {
  const auto e = rmai::spec::load_experiment(
      kQuickstart, {"memory.tier=" + tier, "trace.tokens=" + std::to_string(tokens), "nodes=" + std::to_string(nodes),
                    std::string("sim.fast_path=") + (fast_path ? "true" : "false")});
  const auto trace = rmai::traces::spilled_experiment_trace(e);
  const double accesses = double(tokens) * nodes * e.model.moe_layers * e.model.top_k;
  state.counters["expert_accesses"] = accesses;
  time_in_child(state, name, accesses, [&] {
    // Switches counted and summarized, none kept, as `rmai run --switches none` does.
    rmai::metrics::SwitchLog switches;
    switches.stream_to(g_scratch, tier, {rmai::metrics::SwitchSelection::Kind::None});
    rmai::sim::simulate(e, trace, {}, {}, std::move(switches));
  });
}

// SimGrid's own cost of a comm: one actor sending `comms` messages one after another over one link.
void raw_comms(benchmark::State& state, const std::string& name, int comms) {
  time_in_child(state, name, comms, [comms] {
    int argc = 2;
    char arg0[] = "bench", arg1[] = "--log=root.thres:critical";
    char* argv[] = {arg0, arg1, nullptr};
    simgrid::s4u::Engine engine(&argc, argv);
    auto* zone = simgrid::s4u::create_full_zone("raw");
    auto* a = zone->create_host("a", 1e9);
    auto* b = zone->create_host("b", 1e9);
    auto* link = zone->create_link("l", 25e9)->set_latency(1e-6)->seal();
    zone->add_route(a->get_netpoint(), b->get_netpoint(), nullptr, nullptr, {simgrid::s4u::LinkInRoute(link)}, true);
    zone->seal();
    simgrid::s4u::Actor::create("sender", a, [a, b, comms] {
      for (int i = 0; i < comms; ++i) simgrid::s4u::Comm::sendto(a, b, 1 << 20);
    });
    engine.run();
  });
}

void ratio(const char* label, std::map<std::string, double>& of, const std::string& over, const std::string& under) {
  if (g_rates.count(over) && g_rates.count(under) && of[under] > 0)
    std::printf("%-20s %8.3f  (%s / %s)\n", label, of[over] / of[under], over.c_str(), under.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const std::string tier = rmai::spec::default_tier().name;
  // Runs of a tenth of a second move by 20% from one to the next on this shared machine: they are
  // repeated more, so that their ratio is one of means.
  const auto add = [](benchmark::internal::Benchmark* b, int iterations = 2) {
    b->UseManualTime()->Unit(benchmark::kSecond)->Iterations(iterations);
  };
  add(benchmark::RegisterBenchmark("raw_simgrid_comms", raw_comms, "raw", 1000000));
  add(benchmark::RegisterBenchmark((tier + "_16k_tokens").c_str(), replay, "one", tier, 16384, 1, true), 10);
  add(benchmark::RegisterBenchmark((tier + "_16k_tokens_plain").c_str(), replay, "plain", tier, 16384, 1, false));
  add(benchmark::RegisterBenchmark((tier + "_64_nodes_256_tokens").c_str(), replay, "64", tier, 256, 64, true), 10);
  add(benchmark::RegisterBenchmark((tier + "_256k_tokens").c_str(), replay, "long", tier, 262144, 1, true));
  // The other tiers on one node: each paging path's plan costs what it costs.
  for (const auto& t : rmai::spec::tiers())
    if (t.name != tier)
      add(benchmark::RegisterBenchmark((t.name + "_16k_tokens").c_str(), replay, t.name, t.name, 16384, 1, true));
  std::string scratch = (std::filesystem::temp_directory_path() / "rmai-bench-XXXXXX").string();
  if (!mkdtemp(scratch.data())) return 1;
  g_scratch = scratch;
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  std::filesystem::remove_all(g_scratch);
  benchmark::Shutdown();
  std::printf("\nratios of the rates measured above (accesses or comms per second of wall time):\n");
  ratio("fast_over_plain", g_rates, "one", "plain");
  ratio("one_node_over_raw", g_rates, "one", "raw");
  ratio("64_nodes_over_1", g_rates, "64", "one");
  std::printf("ratio of the peak resident sets:\n");
  ratio("rss_16M_over_1M", g_peak_rss, "long", "one");
  return 0;
}
