#include "replay.hpp"

#include <simgrid/s4u.hpp>

#include <algorithm>

#include "cluster.hpp"
#include "errors.hpp"
#include "expert_cache.hpp"
#include "tier.hpp"

namespace rmai::sim {
namespace {

double roofline(const models::Experiment& e, double weight_bytes) {
  const auto& gpu = e.platform.gpu;
  const double flops = 2.0 * weight_bytes / e.model.bytes_per_param;  // one multiply-add per weight
  return std::max(weight_bytes / (gpu.hbm_bandwidth * gpu.memory_efficiency),
                  flops / (gpu.flops * gpu.compute_efficiency));
}

// Runs switch plans for one node's actor. CPU time is accumulated and slept in one piece just
// before the next transfer starts, which keeps the number of simulated activities small without
// changing any date.
class Executor {
 public:
  void compute(double seconds) { pending_ += seconds; }
  double now() const { return sg4::Engine::get_clock() + pending_; }

  void run(const SwitchPlan& plan) {
    sg4::CommPtr copy_in_flight;
    for (const auto& chunk : plan.chunks) {
      pending_ += chunk.cpu_before;
      if (chunk.has_fetch) start(chunk.fetch)->wait();
      pending_ += chunk.cpu_after;
      if (copy_in_flight) {  // the CPU work above overlaps the previous copy
        flush();
        copy_in_flight->wait();
      }
      copy_in_flight = start(chunk.copy);
    }
    if (copy_in_flight) copy_in_flight->wait();
    pending_ += plan.cpu_end;
  }

  void flush() {
    if (pending_ > 0) sg4::this_actor::sleep_for(pending_);
    pending_ = 0;
  }

 private:
  sg4::CommPtr start(const Transfer& t) {
    pending_ += t.fixed_time;  // the per-operation rounds, then the data at its share of the route
    flush();
    return sg4::Comm::sendto_async(t.from, t.to, static_cast<std::uint64_t>(t.bytes));
  }

  double pending_ = 0;
};

struct NodeOutcome {
  std::vector<metrics::SwitchRecord> switches;
  std::vector<double> token_latencies;
  std::uint64_t accesses = 0, faults = 0, transitions = 0;
  metrics::TierBytes bytes;
};

void replay_node(std::uint32_t node, const models::Experiment& e, const traces::RoutingTrace& trace,
                 const Tier& tier, NodeOutcome& out) {
  const auto& model = e.model;
  cache::ExpertCache cache(e.cache.gpu_experts, model.routed_experts_total(),
                           cache::PolicyRegistry::instance().make(e.cache.policy, model.routed_experts_total()));
  const double layer_time = moe_layer_compute_time(e);
  const double dense_time = dense_layers_compute_time(e);
  const std::size_t tokens = trace.tokens();
  const std::size_t offset = std::size_t(node) * tokens / e.nodes;
  Executor exec;
  std::vector<cache::ExpertKey> layer_keys(model.top_k);
  out.token_latencies.reserve(tokens);
  for (std::size_t step = 0; step < tokens; ++step) {
    const std::size_t token = (offset + step) % tokens;
    const double token_start = exec.now();
    exec.compute(dense_time);
    for (std::uint32_t layer = 0; layer < model.moe_layers; ++layer) {
      const auto experts = trace.experts(token, layer);
      for (std::size_t k = 0; k < experts.size(); ++k) layer_keys[k] = layer * model.experts + experts[k];
      for (std::size_t k = 0; k < experts.size(); ++k) {
        ++out.accesses;
        if (cache.access(layer_keys[k], layer_keys).hit) continue;
        const SwitchPlan plan = tier.plan(node, layer_keys[k]);
        const double start = exec.now();
        exec.run(plan);
        out.switches.push_back({node, token, layer, experts[k], start, exec.now(), model.expert_bytes(), plan.faults});
        out.faults += plan.faults;
        out.transitions += plan.transitions;
        out.bytes += plan.bytes;
      }
      exec.compute(layer_time);
    }
    out.token_latencies.push_back(exec.now() - token_start);
  }
  exec.flush();
}

}  // namespace

const std::vector<std::string>& default_simgrid_options() {
  static const std::vector<std::string> options{
      "--cfg=network/model:CM02", "--cfg=network/crosstraffic:0", "--cfg=network/TCP-gamma:0",
      "--log=root.thres:warning"};
  return options;
}

double moe_layer_compute_time(const models::Experiment& e) {
  return roofline(e, e.model.moe_layer_bytes_per_token());
}

double dense_layers_compute_time(const models::Experiment& e) {
  const double bytes = e.model.dense_layers_bytes_per_token();
  return bytes > 0 ? roofline(e, bytes) : 0.0;
}

metrics::RunResult simulate(const models::Experiment& e, const traces::RoutingTrace& trace,
                            const std::vector<std::string>& simgrid_args) {
  if (!cache::PolicyRegistry::instance().contains(e.cache.policy))
    throw InputError(e.values.child("cache").where("policy"),
                     "unknown cache policy \"" + e.cache.policy + "\" (available: " +
                         cache::PolicyRegistry::instance().names_joined() + ")");
  if (!TierRegistry::instance().contains(e.tier))
    throw InputError(e.values.child("memory").where("tier"), "tier \"" + e.tier + "\" has no simulator model");

  std::vector<std::string> args{"rmai"};
  args.insert(args.end(), default_simgrid_options().begin(), default_simgrid_options().end());
  args.insert(args.end(), simgrid_args.begin(), simgrid_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  int argc = static_cast<int>(argv.size());
  std::unique_ptr<sg4::Engine> engine;
  try {
    engine = std::make_unique<sg4::Engine>(&argc, argv.data());
  } catch (const std::exception& error) {  // a bad --cfg= or --log= option
    throw InputError("SimGrid options", error.what());
  }

  Cluster cluster(e.platform, e.nodes);
  const TierContext context{e, cluster};
  const auto tier = TierRegistry::instance().make(e.tier, context);
  std::vector<NodeOutcome> outcomes(e.nodes);
  for (std::uint32_t i = 0; i < e.nodes; ++i)
    sg4::Actor::create("replay-" + std::to_string(i), cluster.node(i).host,
                       [&, i] { replay_node(i, e, trace, *tier, outcomes[i]); });
  engine->run();

  metrics::RunResult r;
  r.mode = "sim";
  r.model = e.model.name;
  r.tier = e.tier;
  r.policy = e.cache.policy;
  r.nodes = e.nodes;
  r.gpu_experts = e.cache.gpu_experts;
  r.tokens = trace.tokens() * e.nodes;
  r.simulated_time_s = sg4::Engine::get_clock();
  const double experts_bytes = double(e.model.routed_experts_total()) * e.model.expert_bytes();
  const bool pooled = e.tier == "rmai" || e.tier == "page4k";
  r.pool_bytes = pooled ? experts_bytes : experts_bytes * e.nodes;  // the pool holds one copy
  for (auto& o : outcomes) {
    r.expert_accesses += o.accesses;
    r.page_faults += o.faults;
    r.user_kernel_transitions += o.transitions;
    r.bytes += o.bytes;
    r.token_latencies.insert(r.token_latencies.end(), o.token_latencies.begin(), o.token_latencies.end());
    r.switches.insert(r.switches.end(), o.switches.begin(), o.switches.end());
  }
  return r;
}

}  // namespace rmai::sim
