#include "sim/replay.hpp"

#include <simgrid/s4u.hpp>

#include <algorithm>
#include <deque>
#include <mutex>

#include "sim/cluster.hpp"
#include "config/errors.hpp"
#include "sim/cost.hpp"
#include "cache/expert_cache.hpp"
#include "cache/prefetcher.hpp"
#include "sim/tier.hpp"

namespace rmai::sim {
namespace {

double roofline(const spec::Experiment& e, double weight_bytes) {
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
  std::uint64_t prefetches = 0, prefetch_hits = 0;
  metrics::TierBytes bytes;
  double finish = 0;  // when the node's last token ended

  void add_switch(const SwitchPlan& plan, metrics::SwitchRecord record) {
    switches.push_back(record);
    faults += plan.faults;
    transitions += plan.transitions;
    bytes += plan.bytes;
  }
};

bool contains(const auto& keys, cache::ExpertKey key) { return std::find(keys.begin(), keys.end(), key) != keys.end(); }

// One node's prefetching, shared by its replay actor and its prefetch actors. Once a layer's own
// switches are done, the replay actor hands the experts predicted for the next layer to the
// prefetch actors, which switch them in through the same tier while the layer computes, each in the
// background like a second faulting thread: they share links with every other transfer. There are
// `depth` prefetch actors and a layer's predictions take only the free ones, so at most `depth`
// prefetches are in flight per node (SimGrid 3.32 slows down with thousands of activities).
// Actors run one at a time: the mutex is held around every use of these fields and released only
// while switching, sleeping or waiting, so the condition variable loses no wake-up.
struct Prefetching {
  sg4::MutexPtr mutex = sg4::Mutex::create();
  sg4::ConditionVariablePtr changed = sg4::ConditionVariable::create();  // work came, or a prefetch completed
  std::size_t token = 0;                  // the token and layer the predictions below are for
  std::uint32_t layer = 0;
  std::deque<cache::ExpertKey> queue;     // handed over, not started yet
  std::vector<cache::ExpertKey> started;  // started for (token, layer): in flight or resident
  std::vector<cache::ExpertKey> running;  // in flight, possibly for an earlier layer
  bool stop = false;
};

// A prefetch actor: switches handed-over experts in until the replay stops it. A completed prefetch
// takes a cache slot at once (through the policy, which sees it as a use), never evicting the
// replay's current layer or the other prefetches started for the same layer; these number at most
// top_k + depth - 1 besides it, which check_consistency guarantees the cache can spare.
void prefetch_node(std::uint32_t node, const spec::Experiment& e, const Tier& tier, cache::ExpertCache& cache,
                   const std::vector<cache::ExpertKey>& current_layer, Prefetching& p, NodeOutcome& out) {
  Executor exec;
  std::vector<cache::ExpertKey> protect;
  std::unique_lock lock(*p.mutex);
  for (;;) {
    p.changed->wait(lock, [&] { return p.stop || !p.queue.empty(); });
    if (p.stop) return;
    const cache::ExpertKey key = p.queue.front();
    p.queue.pop_front();
    p.running.push_back(key);
    p.started.push_back(key);
    const std::size_t token = p.token;
    const std::uint32_t layer = p.layer;
    lock.unlock();
    const SwitchPlan plan = tier.plan(node, key);
    const double start = exec.now();
    exec.run(plan);
    exec.flush();  // the expert is in HBM now
    lock.lock();
    protect.assign(current_layer.begin(), current_layer.end());
    for (const auto k : p.started)
      if (!contains(protect, k)) protect.push_back(k);
    if (cache.access(key, protect).hit) throw std::logic_error("prefetched an expert that was already resident");
    std::erase(p.running, key);
    ++out.prefetches;
    out.add_switch(plan, {node, token, layer, key - layer * e.model.experts, start, exec.now(), e.model.expert_bytes(),
                          plan.faults, true});
    p.changed->notify_all();
  }
}

void replay_node(std::uint32_t node, const spec::Experiment& e, const traces::RoutingTrace& trace,
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

  // Demand switch of layer_keys[k]: the layer waits for it.
  const auto switch_in = [&](std::size_t token, std::uint32_t layer, std::uint16_t expert, cache::ExpertKey key) {
    const SwitchPlan plan = tier.plan(node, key);
    const double start = exec.now();
    exec.run(plan);
    out.add_switch(plan, {node, token, layer, expert, start, exec.now(), model.expert_bytes(), plan.faults});
  };

  if (e.cache.prefetch == cache::kNoPrefetch) {
    for (std::size_t step = 0; step < tokens; ++step) {
      const std::size_t token = (offset + step) % tokens;
      const double token_start = exec.now();
      exec.compute(dense_time);
      for (std::uint32_t layer = 0; layer < model.moe_layers; ++layer) {
        if (!e.replays_layer(layer)) continue;
        const auto experts = trace.experts(token, layer);
        for (std::size_t k = 0; k < experts.size(); ++k) layer_keys[k] = layer * model.experts + experts[k];
        for (std::size_t k = 0; k < experts.size(); ++k) {
          ++out.accesses;
          if (cache.access(layer_keys[k], layer_keys).hit) continue;
          switch_in(token, layer, experts[k], layer_keys[k]);
        }
        exec.compute(layer_time);
      }
      out.token_latencies.push_back(exec.now() - token_start);
    }
    exec.flush();
    out.finish = sg4::Engine::get_clock();
    return;
  }

  // With a prefetcher: the same replay, plus prefetch actors beside this one. This actor sleeps its
  // pending compute before it looks at the prefetches, so that all of them see the same clock.
  const std::size_t depth = e.cache.prefetch_depth;
  const auto prefetcher = cache::PrefetcherRegistry::instance().make(
      e.cache.prefetch, {model.moe_layers, model.experts, static_cast<std::uint32_t>(depth),
                         [&trace](std::size_t t, std::uint32_t l) { return trace.experts(t, l); }});
  Prefetching p;
  std::vector<sg4::ActorPtr> prefetch_actors;
  for (std::size_t i = 0; i < depth; ++i)
    prefetch_actors.push_back(sg4::Actor::create("prefetch-" + std::to_string(node) + "-" + std::to_string(i),
                                                 sg4::this_actor::get_host(),
                                                 [&] { prefetch_node(node, e, tier, cache, layer_keys, p, out); }));
  std::vector<cache::ExpertKey> predicted;
  for (std::size_t step = 0; step < tokens; ++step) {
    const std::size_t token = (offset + step) % tokens;
    const double token_start = exec.now();
    exec.compute(dense_time);
    for (std::uint32_t layer = 0; layer < model.moe_layers; ++layer) {
      exec.flush();
      std::unique_lock lock(*p.mutex);
      p.queue.clear();  // a prefetch not started before its layer routes is no prefetch
      const auto experts = trace.experts(token, layer);
      for (std::size_t k = 0; k < experts.size(); ++k) layer_keys[k] = layer * model.experts + experts[k];
      for (std::size_t k = 0; k < experts.size(); ++k) {
        ++out.accesses;
        const cache::ExpertKey key = layer_keys[k];
        if (contains(p.started, key)) ++out.prefetch_hits;
        // An expert on its way waits for its prefetch: the wait is part of the token's latency; the
        // switch is recorded once, as the prefetch, with its own start and end.
        if (contains(p.running, key)) p.changed->wait(lock, [&] { return cache.resident(key); });
        if (cache.access(key, layer_keys).hit) continue;
        lock.unlock();
        switch_in(token, layer, experts[k], key);
        exec.flush();
        lock.lock();
      }
      // Hand the next layer's predictions that are neither resident nor on their way to the free
      // prefetch actors; they start now, as the layer starts computing.
      p.started.clear();
      prefetcher->routed(token, layer, layer_keys, predicted);
      p.token = token;
      p.layer = layer + 1;
      for (const auto key : predicted)
        if (p.running.size() + p.queue.size() < depth && !cache.resident(key) && !contains(p.running, key))
          p.queue.push_back(key);
      if (!p.queue.empty()) p.changed->notify_all();
      lock.unlock();
      exec.compute(layer_time);
    }
    out.token_latencies.push_back(exec.now() - token_start);
  }
  exec.flush();
  out.finish = sg4::Engine::get_clock();
  {
    std::unique_lock lock(*p.mutex);
    p.stop = true;  // prefetches in flight complete; none starts any more
    p.queue.clear();
    p.changed->notify_all();
  }
  for (const auto& actor : prefetch_actors) actor->join();  // they use this frame's cache and state
}

}  // namespace

const std::vector<std::string>& default_simgrid_options() {
  static const std::vector<std::string> options{
      "--cfg=network/model:CM02", "--cfg=network/crosstraffic:0", "--cfg=network/TCP-gamma:0",
      "--log=root.thres:warning"};
  return options;
}

double moe_layer_compute_time(const spec::Experiment& e) {
  return roofline(e, e.model.moe_layer_bytes_per_token());
}

double dense_layers_compute_time(const spec::Experiment& e) {
  const double bytes = e.model.dense_layers_bytes_per_token();
  return bytes > 0 ? roofline(e, bytes) : 0.0;
}

void check_registered(const spec::Experiment& e) {
  if (!cache::PolicyRegistry::instance().contains(e.cache.policy))
    throw InputError(e.values.child("cache").where("policy"),
                     "unknown cache policy \"" + e.cache.policy + "\" (available: " +
                         cache::PolicyRegistry::instance().names_joined() + ")");
  if (!cache::PrefetcherRegistry::instance().contains(e.cache.prefetch))
    throw InputError(e.values.child("cache").where("prefetch"),
                     "unknown prefetcher \"" + e.cache.prefetch + "\" (available: " +
                         cache::PrefetcherRegistry::instance().names_joined() + ")");
  if (!TierRegistry::instance().contains(e.tier))
    throw InputError(e.values.child("memory").where("tier"), "tier \"" + e.tier + "\" has no simulator model");
}

metrics::RunResult simulate(const spec::Experiment& e, const traces::RoutingTrace& trace,
                            const std::vector<std::string>& simgrid_args) {
  check_registered(e);

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
  r.prefetch = e.cache.prefetch;
  r.simulated_time_s = 0;  // until the last token ends (a prefetch still in flight then does not count)
  const double experts_bytes = double(e.model.routed_experts_total()) * e.model.expert_bytes();
  r.pool_bytes = e.tier_definition->medium_info().shared ? experts_bytes : experts_bytes * e.nodes;  // a pool holds one copy
  for (auto& o : outcomes) {
    r.simulated_time_s = std::max(r.simulated_time_s, o.finish);
    r.expert_accesses += o.accesses;
    r.prefetches += o.prefetches;
    r.prefetch_hits += o.prefetch_hits;
    r.page_faults += o.faults;
    r.user_kernel_transitions += o.transitions;
    r.bytes += o.bytes;
    r.token_latencies.insert(r.token_latencies.end(), o.token_latencies.begin(), o.token_latencies.end());
    r.switches.insert(r.switches.end(), o.switches.begin(), o.switches.end());
  }
  r.prefetch_wasted_bytes = double(r.prefetches - r.prefetch_hits) * e.model.expert_bytes();
  r.cost = capital_cost(e, r.tokens_per_s() / e.nodes);
  return r;
}

}  // namespace rmai::sim
