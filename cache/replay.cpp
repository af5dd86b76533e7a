#include "cache/replay.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <unordered_map>


namespace rmai::cache {

ReplayPlan replay_plan(const spec::Experiment& e, std::size_t first_token) {
  ReplayPlan plan;
  plan.first_token = first_token;
  plan.experts = e.model.experts;
  plan.top_k = e.model.top_k;
  for (std::uint32_t layer = 0; layer < e.model.moe_layers; ++layer) plan.replays_layer.push_back(e.replays_layer(layer));
  plan.batch = e.serving.batch;
  plan.context = double(e.serving.context);
  plan.concurrency = e.serving.concurrency;
  return plan;
}

std::vector<std::uint32_t> sequence_order(const traces::RoutingTrace& trace) {
  // Already grouped when no sequence comes back after another one started.
  std::unordered_map<std::uint32_t, std::size_t> first_of;  // sequence -> its rank by first token
  bool grouped = true;
  for (std::size_t t = 0; t < trace.tokens(); ++t) {
    const auto [at, fresh] = first_of.try_emplace(trace.seq(t), first_of.size());
    if (!fresh && t > 0 && trace.seq(t - 1) != trace.seq(t)) grouped = false;
  }
  if (grouped) return {};
  std::vector<std::size_t> start(first_of.size() + 1, 0);  // counting sort by rank: stable
  for (std::size_t t = 0; t < trace.tokens(); ++t) ++start[first_of[trace.seq(t)] + 1];
  for (std::size_t r = 1; r < start.size(); ++r) start[r] += start[r - 1];
  std::vector<std::uint32_t> order(trace.tokens());
  for (std::size_t t = 0; t < trace.tokens(); ++t) order[start[first_of[trace.seq(t)]]++] = static_cast<std::uint32_t>(t);
  return order;
}

namespace {

// One node's replay: the stream, the requests in the batch and the step that serves them.
class Replay {
 public:
  Replay(const traces::RoutingTrace& trace, const ReplayPlan& plan, ExpertCache& cache, ReplayExecutor& exec,
         ExpertCache* host)
      : trace_(trace), plan_(plan), cache_(cache), exec_(exec), host_(host), tokens_(trace.tokens()),
        layer_keys_(plan.experts), seen_(plan.experts, 0) {
    if (plan.order && !plan.order->empty() && plan.order->size() != tokens_)
      throw std::logic_error("replay: the sequence order is of another trace");
  }

  ReplayTally run() {
    tally_.token_latencies.reserve(tokens_);
    slots_.resize(plan_.batch);
    while (admit()) decode_step();
    exec_.replay_ends();
    return std::move(tally_);
  }

 private:
  // A request: one sequence's run of the stream, [next, end) still to decode.
  struct Request {
    std::size_t next = 0, end = 0;
    double admitted = 0, first_out = 0;  // when it joined the batch; when its prefill ended (or it joined)
    std::uint64_t decoded = 0;
    bool active = false;
  };

  // The trace token at stream position `pos`.
  std::size_t token_at(std::size_t pos) const {
    const std::size_t p = (plan_.first_token + pos) % tokens_;
    return plan_.order && !plan_.order->empty() ? (*plan_.order)[p] : p;
  }

  // Fills the free slots with the stream's next requests, each prefilled as it joins; false once
  // nothing is left to decode.
  bool admit() {
    // A request joins when its slot is free: now, for all of this pass, so that a request's TTFT
    // includes the prefills of those that joined before it.
    const double free_since = exec_.now();
    bool any = false;
    for (auto& r : slots_) {
      while (!r.active && stream_ < tokens_) start_request(r, free_since);
      any = any || r.active;
    }
    return any;
  }

  // The next request of the stream: the run of one sequence's tokens, up to the wrap of the stream.
  void start_request(Request& r, double admitted) {
    const std::size_t begin = stream_;
    const std::uint32_t seq = trace_.seq(token_at(begin));
    const std::size_t wrap = tokens_ - plan_.first_token % tokens_;  // stream position of trace token 0
    std::size_t end = begin + 1;
    while (end < tokens_ && end != wrap && trace_.seq(token_at(end)) == seq) ++end;
    stream_ = end;
    std::size_t prefill_end = begin;
    while (prefill_end < end && trace_.phase(token_at(prefill_end)) == traces::Phase::Prefill) ++prefill_end;
    r = {prefill_end, end, admitted, admitted, 0, true};
    if (prefill_end > begin) {  // its prompt is prefilled as it joins, before the batch goes on
      prefill_step(begin, prefill_end);
      r.first_out = exec_.now();
      tally_.ttft.push_back(r.first_out - r.admitted);
    }
    if (r.next == r.end) r.active = false;  // a prompt without decode tokens
  }

  void prefill_step(std::size_t begin, std::size_t end) {
    step_tokens_.clear();
    for (std::size_t p = begin; p < end; ++p) step_tokens_.push_back(token_at(p));
    const double n = double(step_tokens_.size());
    // Causal attention: prompt token j reads the j tokens before it.
    step(n * (n - 1) / 2, tally_.prefill_stall_s);
    tally_.prefill_tokens += step_tokens_.size();
    ++tally_.prefill_steps;
    progress();
  }

  void decode_step() {
    step_tokens_.clear();
    for (const auto& r : slots_)
      if (r.active) step_tokens_.push_back(token_at(r.next));
    const double start = exec_.now();
    step(plan_.context * double(step_tokens_.size()), tally_.stall_s);
    const double latency = exec_.now() - start;
    for (std::size_t i = 0; i < step_tokens_.size(); ++i) tally_.token_latencies.push_back(latency);
    tally_.step_latencies.push_back(latency);
    tally_.decode_tokens += step_tokens_.size();
    ++tally_.decode_steps;
    tally_.max_batch = std::max(tally_.max_batch, static_cast<std::uint32_t>(step_tokens_.size()));
    for (auto& r : slots_) {
      if (!r.active) continue;
      ++r.decoded;
      if (++r.next < r.end) continue;
      r.active = false;
      tally_.tpot.push_back((exec_.now() - r.first_out) / double(r.decoded));
    }
    progress();
  }

  void progress() {
    if (plan_.progress) plan_.progress(tally_.decode_tokens + tally_.prefill_tokens, tokens_);
  }

  // The step of step_tokens_ through every layer; adds the time it waited for experts to `stall`.
  void step(double context_tokens, double& stall) {
    const auto n = static_cast<std::uint32_t>(step_tokens_.size());
    if (plan_.dense_time) exec_.compute(plan_.dense_time({n, 0, context_tokens}));
    for (std::uint32_t layer = 0; layer < plan_.replays_layer.size(); ++layer) {
      if (!plan_.replays_layer[layer]) continue;
      const std::span<const ExpertKey> keys = layer_union(layer);
      lookups(layer, keys, stall);
      exec_.layer_routed(step_tokens_.front(), layer, keys);
      if (plan_.layer_time) exec_.compute(plan_.layer_time({n, static_cast<std::uint32_t>(keys.size()), context_tokens}));
    }
  }

  // The distinct experts the step's tokens chose at `layer`, in order of first choice (at batch 1
  // the token's own experts in rank order), in layer_keys_.
  std::span<const ExpertKey> layer_union(std::uint32_t layer) {
    exec_.layer_begins({layer_keys_.data(), plan_.top_k});
    ++stamp_;
    std::size_t size = 0;
    for (const std::size_t token : step_tokens_)
      for (const auto expert : trace_.experts(token, layer)) {
        if (seen_[expert] == stamp_) continue;
        seen_[expert] = stamp_;
        layer_keys_[size++] = expert_key(layer, expert, plan_.experts);
      }
    // load_experiment and experiment_trace check the prompts and the batch against the slots.
    if (size > cache_.slots())
      throw std::logic_error("replay: a step needs " + std::to_string(size) + " experts of MoE layer " +
                             std::to_string(layer) + " at once, more than the " + std::to_string(cache_.slots()) +
                             " slots");
    return {layer_keys_.data(), size};
  }

  // Looks up every token's experts at `layer` in the cache, token by token in rank order, and
  // switches the misses in; adds the time spent waiting for them to `stall`.
  void lookups(std::uint32_t layer, std::span<const ExpertKey> keys, double& stall) {
    misses_.clear();
    for (const std::size_t token : step_tokens_) {
      const auto experts = trace_.experts(token, layer);
      for (std::size_t k = 0; k < experts.size(); ++k) {
        ++tally_.accesses;
        const ExpertKey key = expert_key(layer, experts[k], plan_.experts);
        const double wait_start = exec_.now();
        exec_.before_lookup(key);  // may wait for the expert's prefetch
        const auto access = cache_.access(key, keys);
        if (!access.hit) {
          if (access.evicted) exec_.evicted(*access.evicted);
          Access miss{token, layer, experts[k], key};
          if (host_) {
            // The host cache keeps what this layer is still bringing in (concurrent switches); a
            // prefill step may bring more than it holds: those in hand go first.
            if (misses_.size() >= host_->slots()) {
              double inside_this_wait = 0;  // this lookup's window below counts it once
              switch_misses(inside_this_wait);
            }
            host_protect_.clear();
            for (const auto& m : misses_) host_protect_.push_back(m.key);
            const auto in_host = host_->access(key, host_protect_);
            miss.from_host = in_host.hit;
            tally_.host_hits += in_host.hit;
            if (in_host.evicted) {
              exec_.host_evicted(*in_host.evicted);
              miss.host_evicts = true;
            }
          }
          if (plan_.concurrency > 1)
            misses_.push_back(miss);
          else
            exec_.switch_in(miss);
        }
        stall += exec_.now() - wait_start;
      }
    }
    switch_misses(stall);
  }

  // Switches the misses in hand in, `concurrency` at a time.
  void switch_misses(double& stall) {
    if (misses_.empty()) return;
    const double wait_start = exec_.now();
    exec_.switch_in_all(misses_, plan_.concurrency);
    stall += exec_.now() - wait_start;
    misses_.clear();
  }

  const traces::RoutingTrace& trace_;
  const ReplayPlan& plan_;
  ExpertCache& cache_;
  ReplayExecutor& exec_;
  ExpertCache* host_;
  const std::size_t tokens_;
  std::size_t stream_ = 0;                 // stream position of the next request
  std::vector<Request> slots_;
  std::vector<std::size_t> step_tokens_;   // trace tokens of the current step
  // The current layer's union (see layer_union): one slot per expert of a layer, never reallocated,
  // since a prefetcher keeps a view of it.
  std::vector<ExpertKey> layer_keys_;
  std::vector<std::uint64_t> seen_;        // by expert: the stamp of the last union it joined
  std::uint64_t stamp_ = 0;
  std::vector<Access> misses_;             // the current layer's, with concurrency > 1
  std::vector<ExpertKey> host_protect_;
  ReplayTally tally_;
};

}  // namespace

metrics::Serving serving_settings(const spec::Experiment& e) {
  metrics::Serving s;
  s.batch = e.serving.batch;
  s.prompt = e.serving.prompt;
  s.context = e.serving.context;
  s.concurrency = e.serving.concurrency;
  s.host_experts = e.cache.host_experts;
  return s;
}

void add_tally(ReplayTally&& t, metrics::RunResult& r) {
  const auto append = [](std::vector<double>& to, const std::vector<double>& from) {
    to.insert(to.end(), from.begin(), from.end());
  };
  r.expert_accesses += t.accesses;
  r.tokens += t.decode_tokens;
  r.stall_s += t.stall_s;
  append(r.token_latencies, t.token_latencies);
  auto& s = r.serving;
  s.decode_steps += t.decode_steps;
  s.prefill_steps += t.prefill_steps;
  s.prefill_tokens += t.prefill_tokens;
  s.max_batch = std::max(s.max_batch, t.max_batch);
  s.host_hits += t.host_hits;
  s.prefill_stall_s += t.prefill_stall_s;
  append(s.step_latencies, t.step_latencies);
  append(s.ttft, t.ttft);
  append(s.tpot, t.tpot);
}

ReplayTally replay(const traces::RoutingTrace& trace, const ReplayPlan& plan, ExpertCache& cache,
                   ReplayExecutor& exec, ExpertCache* host) {
  if (trace.tokens() == 0) {
    exec.replay_ends();
    return {};
  }
  return Replay(trace, plan, cache, exec, host).run();
}

}  // namespace rmai::cache
