#include "sim/replay.hpp"

#include <fcntl.h>
#include <simgrid/s4u.hpp>
#include <csignal>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <system_error>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>

#include "sim/cluster.hpp"
#include "sim/fabric.hpp"
#include "sim/node_fibers.hpp"
#include "config/errors.hpp"
#include "posix/errors.hpp"
#include "sim/cost.hpp"
#include "cache/expert_cache.hpp"
#include "cache/prefetcher.hpp"
#include "cache/replay.hpp"
#include "sim/tier.hpp"

namespace rmai::sim {
namespace {

double roofline(const spec::Experiment& e, double bytes, double flops) {
  const auto& gpu = e.platform.gpu;
  return std::max(bytes / (gpu.hbm_bandwidth * gpu.memory_efficiency), flops / (gpu.flops * gpu.compute_efficiency));
}

// One multiply-add per weight and token: the FLOPs of `weight_bytes` of weights applied to one token.
double matmul_flops(const spec::Experiment& e, double weight_bytes) { return 2.0 * weight_bytes / e.model.bytes_per_param; }

// Attention over `context_tokens` tokens of KV cache in one layer: the scores (q . k) and the
// weighted sum of the values, a multiply-add per head dimension each.
double attention_flops(const spec::Experiment& e, double context_tokens) {
  return 4.0 * double(e.model.attention_heads) * e.model.head_dim * context_tokens;
}

// What the fast path (sim.fast_path) runs on: the routes, to know which are a node's own, and the
// nodes' scheduler with its Fabric for the transfers that may share a link.
struct FastPath {
  const Cluster& cluster;
  NodeFibers& fibers;
};

// Runs switch plans for one node. CPU time is accumulated and passed in one piece just before the
// next transfer starts, which keeps the number of simulated activities small without changing any
// date.
//
// On the plain path every transfer is a SimGrid comm, and the clock is SimGrid's. On the fast path
// (one executor per node: concurrency 1, no prefetcher) nothing is SimGrid's: the executor keeps its
// own clock, and moves it with the very additions SimGrid makes (a sleep ends at now + duration, a
// comm at now + latency, then + bytes / rate). A transfer on a route no other node crosses is alone
// on its links, so it ends at (now + latency) + bytes / bandwidth, as SimGrid would time it, with
// no event at all. The others (a route several nodes cross; every transfer of a plan whose fetch
// overlaps the previous chunk's copy, two of its own on the node's DRAM at once) are flows of the
// Fabric, whose waits the NodeFibers scheduler orders across the nodes. Where no two transfers
// share a link, both paths compute the same dates to the last bit, or nearly; where they do, a
// fluid model amplifies a difference in the last bit of one date into visible ones
// (docs/architecture.md, "The fast path").
TransferCounts g_transfer_counts;  // one simulate() per process; its nodes run one at a time

class Executor {
 public:
  // `fast`: the fast path's, when it applies to this executor; null: every transfer is a comm.
  explicit Executor(const FastPath* fast = nullptr) : fast_(fast) {}

  void compute(double seconds) { pending_ += seconds; }
  double now() const { return clock() + pending_; }

  void run(const SwitchPlan& plan) {
    const bool alone = !fetch_overlaps_copy(plan);  // no two of its transfers in flight at once
    InFlight copy;
    for (const auto& chunk : plan.chunks) {
      pending_ += chunk.cpu_before;
      if (chunk.has_fetch) wait(start(chunk.fetch, alone));
      pending_ += chunk.cpu_after;
      wait(std::move(copy));  // the CPU work above overlaps the previous copy
      copy = start(chunk.copy, alone);
    }
    wait(std::move(copy));
    pending_ += plan.cpu_end;
  }

  // Passes what is pending: the clock reaches now().
  void flush() {
    if (fast_) return pass_pending();
    if (pending_ > 0) sg4::this_actor::sleep_for(pending_);
    pending_ = 0;
  }

 private:
  // A transfer under way: a SimGrid comm, a flow of the fabric, or one timed in closed form that
  // ends at `ends`.
  struct InFlight {
    sg4::CommPtr comm;
    std::optional<Fabric::FlowId> flow;
    double ends = -1;
  };

  static bool fetch_overlaps_copy(const SwitchPlan& plan) {
    for (std::size_t i = 1; i < plan.chunks.size(); ++i)
      if (plan.chunks[i].has_fetch) return true;
    return false;
  }

  double clock() const { return fast_ ? clock_ : sg4::Engine::get_clock(); }
  // Where the plain path sleeps what is pending: clock_ moves as a sleep would move SimGrid's clock.
  void pass_pending() {
    if (pending_ > 0) clock_ = clock_ + pending_;
    pending_ = 0;
  }

  InFlight start(const Transfer& t, bool alone) {
    pending_ += t.fixed_time;  // the per-operation rounds, then the data at its share of the route
    const auto bytes = static_cast<std::uint64_t>(t.bytes);
    if (!fast_) {
      flush();
      ++g_transfer_counts.comms;
      return {sg4::Comm::sendto_async(t.from, t.to, bytes), {}, -1};
    }
    pass_pending();
    const Route& route = route_of(t);
    if (alone && !route.shared) {
      ++g_transfer_counts.closed_form;
      return {nullptr, {}, (clock_ + route.latency) + double(bytes) / route.bandwidth};
    }
    ++g_transfer_counts.fabric;
    return {nullptr, fast_->fibers.fabric().start(clock_, route.latency, double(bytes), route.links, alone), -1};
  }

  void wait(InFlight t) {
    if (t.comm) {
      flush();
      t.comm->wait();
      return;
    }
    if (!t.flow && t.ends < 0) return;  // nothing in flight
    pass_pending();  // the plain path sleeps what is pending, then waits for the comm
    clock_ = std::max(clock_, t.flow ? fast_->fibers.wait(*t.flow) : t.ends);
  }

  // The route of a transfer, from the few this node's transfers take (its servers', its own links):
  // a short scan, where the cluster's map hashes and walks a bucket every time.
  const Route& route_of(const Transfer& t) {
    for (const auto& known : routes_)
      if (known.from == t.from && known.to == t.to) return *known.route;
    routes_.push_back({t.from, t.to, &fast_->cluster.route(t.from, t.to)});
    return *routes_.back().route;
  }

  struct KnownRoute {
    const sg4::Host* from;
    const sg4::Host* to;
    const Route* route;
  };
  const FastPath* fast_;
  std::vector<KnownRoute> routes_;
  double clock_ = 0;    // the fast path's simulated clock (see above)
  double pending_ = 0;  // CPU time not passed yet
};

struct NodeOutcome {
  metrics::SwitchLog* switches = nullptr;  // the run's, shared by the nodes (actors run one at a time)
  cache::ReplayTally tally;
  std::uint64_t faults = 0, transitions = 0;
  std::uint64_t prefetches = 0, prefetch_hits = 0;
  metrics::TierBytes bytes;
  double finish = 0;  // when the node's last token ended

  // `medium`: the counter the tier's medium fills (spec/tiers.hpp), None for a copy from the host
  // cache; every switch crosses PCIe.
  void add_switch(const SwitchPlan& plan, metrics::SwitchRecord record, spec::BytesFrom medium) {
    switches->add(record);
    faults += plan.faults;
    transitions += plan.transitions;
    bytes.pcie += record.bytes;
    if (double* from = bytes.from(medium)) *from += record.bytes;
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
  bool abandoned = false;  // the replay failed: the loop's state is gone, a completed prefetch is dropped
};

// A prefetch actor: switches handed-over experts in until the replay stops it. A completed prefetch
// takes a cache slot at once (through the policy, which sees it as a use), never evicting the
// replay's current layer or the other prefetches started for the same layer; these number at most
// top_k + depth - 1 besides it, which check_consistency guarantees the cache can spare.
void prefetch_node(std::uint32_t node, const spec::Experiment& e, const Tier& tier, cache::ExpertCache& cache,
                   std::span<const cache::ExpertKey> current_layer, Prefetching& p, NodeOutcome& out) {
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
    if (p.abandoned) return;
    protect.assign(current_layer.begin(), current_layer.end());
    for (const auto k : p.started)
      if (!contains(protect, k)) protect.push_back(k);
    if (cache.access(key, protect).hit) throw std::logic_error("prefetched an expert that was already resident");
    std::erase(p.running, key);
    ++out.prefetches;
    out.add_switch(plan, {node, token, layer, static_cast<std::uint16_t>(cache::expert_of(key, e.model.experts)), start,
                          exec.now(), e.model.expert_bytes(), plan.faults, true},
                   e.tier_definition->medium_info().bytes);
    p.changed->notify_all();
  }
}

// A node's executor of the shared replay loop (cache/replay.hpp): switches run the tier's plan on
// the Executor (SimGrid activities on SimGrid's clock, or the fast path's on its own), compute is
// passed on the same clock.
class NodeExecutor : public cache::ReplayExecutor {
 public:
  // `fast`: the fast path's, when it applies to the node (see Executor); else null.
  NodeExecutor(std::uint32_t node, const spec::Experiment& e, const Tier& tier, const NodeHosts& hosts,
               NodeOutcome& out, const FastPath* fast = nullptr)
      : node_(node), e_(e), tier_(tier), hosts_(hosts), out_(out), exec_(fast) {}

  double now() override { return exec_.now(); }
  void compute(double seconds) override { exec_.compute(seconds); }
  void switch_in(const cache::Access& a) override { run_switch(exec_, a); }
  // Up to `concurrency` switch actors on the node take the misses in turn, each like a faulting
  // thread of its own: their transfers share the node's links and the servers' NICs. The replay
  // waits for all of them. (Actors run one at a time, so the shared index needs no lock.) An
  // exception in an actor would abort inside SimGrid: each keeps its own, rethrown once all joined.
  void switch_in_all(std::span<const cache::Access> misses, std::uint32_t concurrency) override {
    exec_.flush();  // they start now
    std::size_t next = 0;
    std::vector<std::exception_ptr> failures(std::min<std::size_t>(concurrency, misses.size()));
    std::vector<sg4::ActorPtr> actors;
    for (std::size_t i = 0; i < failures.size(); ++i)
      actors.push_back(sg4::Actor::create("switch-" + std::to_string(node_) + "-" + std::to_string(i),
                                          sg4::this_actor::get_host(), [this, misses, &next, &failure = failures[i]] {
                                            try {
                                              Executor exec;
                                              while (next < misses.size()) {
                                                run_switch(exec, misses[next++]);
                                                exec.flush();
                                              }
                                            } catch (...) {
                                              failure = std::current_exception();
                                              next = misses.size();
                                            }
                                          }));
    for (const auto& actor : actors) actor->join();
    for (const auto& failure : failures)
      if (failure) std::rethrow_exception(failure);
  }
  // The node's last token ended: pass what is pending, note the date.
  void replay_ends() override {
    exec_.flush();
    out_.finish = exec_.now();
  }

 protected:
  // One switch on `exec`. From the host cache it is the copy to the GPU alone, as from the dram
  // tier. With a host cache,
  // a switch from the tier leaves the expert mapped (or cached) in host memory, so the tier's
  // teardown (plan.cpu_end) is paid when the host cache evicts an expert instead, by the switch
  // that evicts it.
  void run_switch(Executor& exec, const cache::Access& a) {
    SwitchPlan plan;
    spec::BytesFrom medium = e_.tier_definition->medium_info().bytes;
    if (a.from_host) {
      plan = copy_plan(hosts_.host, hosts_.gpu, e_.model.expert_bytes(), e_.platform.gpu.copy_launch);
      medium = spec::BytesFrom::None;
    } else {
      plan = tier_.plan(node_, a.key);
      if (e_.cache.host_experts > 0 && !a.host_evicts) plan.cpu_end = 0;
    }
    const double start = exec.now();
    exec.run(plan);
    out_.add_switch(plan, {node_, a.token, a.layer, a.expert, start, exec.now(), e_.model.expert_bytes(), plan.faults},
                    medium);
  }

  std::uint32_t node_;
  const spec::Experiment& e_;
  const Tier& tier_;
  const NodeHosts& hosts_;
  NodeOutcome& out_;
  Executor exec_;
};

// The executor with a prefetcher: the same replay, plus prefetch actors beside it. It sleeps its
// pending compute before it looks at the prefetches, so that all of them see the same clock, and
// holds the mutex whenever it touches the shared state.
class PrefetchingExecutor final : public NodeExecutor {
 public:
  PrefetchingExecutor(std::uint32_t node, const spec::Experiment& e, const Tier& tier, const NodeHosts& hosts,
                      cache::ExpertCache& cache, NodeOutcome& out)
      : NodeExecutor(node, e, tier, hosts, out),
        cache_(cache),
        depth_(e.cache.prefetch_depth),
        prefetcher_(cache::PrefetcherRegistry::instance().make(
            e.cache.prefetch, {e.model.moe_layers, e.model.experts, static_cast<std::uint32_t>(depth_),
                               [this](std::size_t, std::uint32_t l) {
                                 return routing_.subspan(std::size_t{l} * e_.model.top_k, e_.model.top_k);
                               }})),
        lock_(*p_.mutex, std::defer_lock) {}

  void layer_begins(std::span<const cache::ExpertKey> layer_keys) override {
    if (actors_.empty()) start_actors(layer_keys);
    exec_.flush();
    lock_.lock();
    p_.queue.clear();  // a prefetch not started before its layer routes is no prefetch
  }
  void before_lookup(cache::ExpertKey key) override {
    if (contains(p_.started, key)) ++out_.prefetch_hits;
    // An expert on its way waits for its prefetch: the wait is part of the token's latency; the
    // switch is recorded once, as the prefetch, with its own start and end.
    if (contains(p_.running, key)) p_.changed->wait(lock_, [&] { return cache_.resident(key); });
  }
  void switch_in(const cache::Access& a) override {
    lock_.unlock();
    NodeExecutor::switch_in(a);
    exec_.flush();
    lock_.lock();
  }
  // Hands the next layer's predictions that are neither resident nor on their way to the free
  // prefetch actors; they start now, as the layer starts computing.
  void layer_routed(std::size_t token, std::span<const std::uint16_t> routing, std::uint32_t layer,
                    std::span<const cache::ExpertKey> keys) override {
    p_.started.clear();
    routing_ = routing;
    prefetcher_->routed(token, layer, keys, predicted_);
    p_.token = token;
    p_.layer = layer + 1;
    for (const auto key : predicted_)
      if (p_.running.size() + p_.queue.size() < depth_ && !cache_.resident(key) && !contains(p_.running, key))
        p_.queue.push_back(key);
    if (!p_.queue.empty()) p_.changed->notify_all();
    lock_.unlock();
  }
  // After the replay: prefetches in flight complete, none starts any more; the actors use this
  // object's state and the loop's layer keys, so they are joined before either goes.
  void replay_ends() override {
    NodeExecutor::replay_ends();
    {
      std::unique_lock lock(*p_.mutex);
      p_.stop = true;
      p_.queue.clear();
      p_.changed->notify_all();
    }
    for (const auto& actor : actors_) actor->join();
    actors_.clear();
  }
  // A replay that threw never reached replay_ends(): its actors must not outlive the state they use.
  // They are stopped and joined, not killed: a killed actor unwinding its lock would need the
  // scheduler it is being removed from (a deadlock with thread contexts). What they have in flight
  // completes unrecorded.
  ~PrefetchingExecutor() override {
    if (actors_.empty()) return;
    if (!lock_.owns_lock()) lock_.lock();
    p_.stop = p_.abandoned = true;
    p_.queue.clear();
    p_.changed->notify_all();
    lock_.unlock();
    for (const auto& actor : actors_) actor->join();
  }

 private:
  // `depth` prefetch actors, created with the first layer (they protect the loop's layer keys).
  void start_actors(std::span<const cache::ExpertKey> layer_keys) {
    for (std::size_t i = 0; i < depth_; ++i)
      actors_.push_back(sg4::Actor::create("prefetch-" + std::to_string(node_) + "-" + std::to_string(i),
                                           sg4::this_actor::get_host(), [this, layer_keys] {
                                             prefetch_node(node_, e_, tier_, cache_, layer_keys, p_, out_);
                                           }));
  }

  cache::ExpertCache& cache_;
  std::size_t depth_;
  std::span<const std::uint16_t> routing_;  // the token's, while its layer routes (the oracle reads it)
  std::unique_ptr<cache::Prefetcher> prefetcher_;
  Prefetching p_;
  std::unique_lock<sg4::Mutex> lock_;
  std::vector<sg4::ActorPtr> actors_;
  std::vector<cache::ExpertKey> predicted_;
};

// Whether the fast path applies (see Executor): asked for, one actor per node moving data, and
// SimGrid's network model as default_simgrid_options() sets it (a --cfg= option may change how it
// times a transfer).
bool fast_path_applies(const spec::Experiment& e, const std::vector<std::string>& simgrid_args) {
  const bool model_changed = std::any_of(simgrid_args.begin(), simgrid_args.end(),
                                         [](const std::string& a) { return a.starts_with("--cfg="); });
  return e.fast_path && !model_changed && e.serving.concurrency == 1 && e.cache.prefetch == cache::kNoPrefetch;
}

void replay_node(std::uint32_t node, const spec::Experiment& e, const traces::SpilledTrace& trace,
                 const Tier& tier, const NodeHosts& hosts,
                 const cache::ReplayProgress& progress, const FastPath* fast, NodeOutcome& out) {
  const auto& model = e.model;
  const std::size_t keys = model.routed_experts_total();
  cache::ExpertCache cache(e.cache.gpu_experts, keys, cache::PolicyRegistry::instance().make(e.cache.policy, keys));
  std::optional<cache::ExpertCache> host;
  if (e.cache.host_experts > 0)
    host.emplace(e.cache.host_experts, keys, cache::PolicyRegistry::instance().make(e.cache.host_policy, keys));
  cache::ReplayPlan plan = cache::replay_plan(e, std::size_t(node) * trace.tokens() / e.nodes);
  plan.dense_time = [&e](const cache::StepWork& w) { return dense_layers_compute_time(e, w); };
  plan.layer_time = [&e](const cache::StepWork& w) { return moe_layer_compute_time(e, w); };
  if (node == 0) plan.progress = progress;  // the nodes replay as many tokens each
  std::unique_ptr<NodeExecutor> exec;
  if (e.cache.prefetch == cache::kNoPrefetch)
    exec = std::make_unique<NodeExecutor>(node, e, tier, hosts, out, fast);
  else
    exec = std::make_unique<PrefetchingExecutor>(node, e, tier, hosts, cache, out);
  out.tally = cache::replay(trace, plan, cache, *exec, host ? &*host : nullptr);
}

}  // namespace

const std::vector<std::string>& default_simgrid_options() {
  static const std::vector<std::string> options{
      "--cfg=network/model:CM02", "--cfg=network/crosstraffic:0", "--cfg=network/TCP-gamma:0",
      "--log=root.thres:warning",
#ifdef RMAI_SANITIZE
      // AddressSanitizer cannot follow an exception unwinding on the stacks SimGrid's default
      // contexts switch to by hand (it reports a stack-buffer-overflow in __asan_handle_no_return):
      // with one thread per actor it can. Scheduling, and so every result, stays the same.
      "--cfg=contexts/factory:thread",
#endif
  };
  return options;
}

double moe_layer_compute_time(const spec::Experiment& e, const cache::StepWork& w) {
  const auto& m = e.model;
  // Read once per step: attention, the shared experts and every routed expert some token chose.
  const double weights = m.attention_params * m.bytes_per_param + double(w.experts_in_use + m.shared_experts) * m.expert_bytes();
  // Applied to each token: attention, the shared experts and its own top-k.
  const double per_token = m.moe_layer_bytes_per_token();
  return roofline(e, weights + w.context_tokens * m.kv_cache_bytes,
                  double(w.tokens) * matmul_flops(e, per_token) + attention_flops(e, w.context_tokens));
}

double moe_layer_compute_time(const spec::Experiment& e) { return moe_layer_compute_time(e, {1, e.model.top_k, 0}); }

double dense_layers_compute_time(const spec::Experiment& e, const cache::StepWork& w) {
  const auto& m = e.model;
  const double layers = double(m.layers - m.moe_layers);
  const double weights = m.dense_layers_bytes_per_token();  // read once, applied to each token
  if (layers == 0) return 0.0;
  return roofline(e, weights + layers * w.context_tokens * m.kv_cache_bytes,
                  double(w.tokens) * matmul_flops(e, weights) + layers * attention_flops(e, w.context_tokens));
}

double dense_layers_compute_time(const spec::Experiment& e) { return dense_layers_compute_time(e, {1, 0, 0}); }

namespace {

// Starts a SimGrid engine on `args` (program name first) and makes it build a platform, so that
// every option is parsed and the network model is instantiated. SimGrid reports a bad option by
// aborting the process (and writing a backtrace file into the working directory), so this runs in
// a child process, in a private scratch directory, without a core dump. Returns the child's
// diagnostics when it failed, "" when the options are fine.
constexpr int kCheckFailed = 3;  // the check's child could not set itself up: not the options' fault

std::string simgrid_refuses(const std::vector<std::string>& args) {
  std::string scratch = (std::filesystem::temp_directory_path() / "rmai-simgrid-check-XXXXXX").string();
  if (!::mkdtemp(scratch.data())) posix::throw_errno("mkdtemp");
  struct Scratch {  // removed however this ends
    const std::string& path;
    ~Scratch() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  } remove_scratch{scratch};
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) posix::throw_errno("pipe2");
  const pid_t pid = ::fork();  // not posix::spawn: the child runs SimGrid in this process image, no exec
  if (pid < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    posix::throw_errno("fork");
  }
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDERR_FILENO);
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::alarm(30);  // building a one-host platform takes milliseconds: a child still here is stuck
    if (::chdir(scratch.c_str()) != 0) ::_exit(kCheckFailed);
    try {
      std::vector<std::string> copy = args;
      std::vector<char*> argv;
      for (auto& a : copy) argv.push_back(a.data());
      int argc = static_cast<int>(argv.size());
      sg4::Engine engine(&argc, argv.data());
      auto* zone = sg4::create_full_zone("check");
      zone->create_host("h", 1e9);
      zone->seal();
    } catch (const std::exception& error) {
      std::fputs(error.what(), stderr);
      std::fflush(stderr);
      ::_exit(2);
    }
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (out.size() < 65536) out.append(buffer, std::size_t(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status) && WEXITSTATUS(status) == kCheckFailed)
    throw std::runtime_error("cannot check the SimGrid options: the check could not enter " + scratch);
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    throw std::runtime_error("checking the SimGrid options took more than 30 s");
  // The first line that says what is wrong: SimGrid's CRITICAL message, or the exception's text.
  std::istringstream lines(out);
  std::string first;
  for (std::string line; std::getline(lines, line);) {
    if (const auto at = line.find("[root/CRITICAL] "); at != std::string::npos) return line.substr(at + 16);
    if (first.empty() && !line.empty()) first = line;
  }
  return first.empty() ? "SimGrid refused it" : first;
}

}  // namespace

void check_simgrid_options(const std::vector<std::string>& simgrid_args) {
  for (const auto& option : simgrid_args) {
    std::vector<std::string> args{"rmai"};
    args.insert(args.end(), default_simgrid_options().begin(), default_simgrid_options().end());
    args.push_back(option);
    if (const std::string why = simgrid_refuses(args); !why.empty()) throw InputError(option, why);
  }
}

void check_registered(const spec::Experiment& e) {
  if (!cache::PolicyRegistry::instance().contains(e.cache.policy))
    throw InputError(e.values.child("cache").where("policy"),
                     "unknown cache policy \"" + e.cache.policy + "\" (available: " +
                         cache::PolicyRegistry::instance().names_joined() + ")");
  if (!cache::PolicyRegistry::instance().contains(e.cache.host_policy))
    throw InputError(e.values.child("cache").where("host_policy"),
                     "unknown cache policy \"" + e.cache.host_policy + "\" (available: " +
                         cache::PolicyRegistry::instance().names_joined() + ")");
  if (!cache::PrefetcherRegistry::instance().contains(e.cache.prefetch))
    throw InputError(e.values.child("cache").where("prefetch"),
                     "unknown prefetcher \"" + e.cache.prefetch + "\" (available: " +
                         cache::PrefetcherRegistry::instance().names_joined() + ")");
  if (!TierRegistry::instance().contains(e.tier))
    throw InputError(e.values.child("memory").where("tier"), "tier \"" + e.tier + "\" has no simulator model");
}

TransferCounts transfer_counts() { return g_transfer_counts; }

metrics::RunResult simulate(const spec::Experiment& e, const traces::RoutingTrace& trace,
                            const std::vector<std::string>& simgrid_args, const cache::ReplayProgress& progress,
                            metrics::SwitchLog switches) {
  check_registered(e);  // bad input first, before the trace is written out
  return simulate(e, traces::SpilledTrace::spill(trace), simgrid_args, progress, std::move(switches));
}

metrics::RunResult simulate(const spec::Experiment& e, const traces::SpilledTrace& trace,
                            const std::vector<std::string>& simgrid_args, const cache::ReplayProgress& progress,
                            metrics::SwitchLog switches) {
  check_registered(e);
  check_simgrid_options(simgrid_args);

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
  metrics::RunResult r;
  r.switches = std::move(switches);
  std::vector<NodeOutcome> outcomes(e.nodes);
  for (auto& o : outcomes) o.switches = &r.switches;
  if (fast_path_applies(e, simgrid_args)) {  // no SimGrid activity: the nodes are fibers (see Executor)
    Fabric fabric(cluster.links());
    NodeFibers fibers(fabric);
    const FastPath fast{cluster, fibers};
    for (std::uint32_t i = 0; i < e.nodes; ++i)
      fibers.add([&, i] { replay_node(i, e, trace, *tier, cluster.node(i), progress, &fast, outcomes[i]); });
    fibers.run();
  } else {
    // An exception in an actor would abort the process inside SimGrid: each node keeps its own, the
    // others finish, and the first one is thrown once the engine is done.
    std::vector<std::exception_ptr> failures(e.nodes);
    for (std::uint32_t i = 0; i < e.nodes; ++i)
      sg4::Actor::create("replay-" + std::to_string(i), cluster.node(i).host, [&, i] {
        try {
          replay_node(i, e, trace, *tier, cluster.node(i), progress, nullptr, outcomes[i]);
        } catch (...) {
          failures[i] = std::current_exception();
        }
      });
    engine->run();
    for (const auto& failure : failures)
      if (failure) std::rethrow_exception(failure);
  }

  r.mode = "sim";
  r.model = e.model.name;
  r.tier = e.tier;
  r.policy = e.cache.policy;
  r.nodes = e.nodes;
  r.gpu_experts = e.cache.gpu_experts;
  r.prefetch = e.cache.prefetch;
  r.serving = cache::serving_settings(e);
  r.simulated_time_s = 0;  // until the last token ends (a prefetch still in flight then does not count)
  const double experts_bytes = double(e.model.routed_experts_total()) * e.model.expert_bytes();
  r.pool_bytes = e.tier_definition->medium_info().shared ? experts_bytes : experts_bytes * e.nodes;  // a pool holds one copy
  r.pool_bytes += host_cache_bytes(e) * e.nodes;  // each node's host cache is memory of its own
  for (auto& o : outcomes) {
    r.simulated_time_s = std::max(r.simulated_time_s, o.finish);
    cache::add_tally(std::move(o.tally), r);
    r.prefetches += o.prefetches;
    r.prefetch_hits += o.prefetch_hits;
    r.page_faults += o.faults;
    r.user_kernel_transitions += o.transitions;
    r.bytes += o.bytes;
  }
  r.prefetch_wasted_bytes = double(r.prefetches - r.prefetch_hits) * e.model.expert_bytes();
  r.cost = capital_cost(e, r.tokens_per_s_per_node());
  return r;
}

}  // namespace rmai::sim
