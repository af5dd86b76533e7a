#include "cache/replay.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>


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

namespace {

// One node's replay: the stream, the requests in the batch and the step that serves them.
class Replay {
 public:
  Replay(const traces::SpilledTrace& trace, const ReplayPlan& plan, ExpertCache& cache, ReplayExecutor& exec,
         ExpertCache* host)
      : trace_(trace), plan_(plan), cache_(cache), exec_(exec), host_(host), tokens_(trace.tokens()),
        per_token_(std::size_t{trace.shape().layers} * trace.shape().top_k),
        read_ahead_(std::max<std::size_t>(1, kWindowBytes / (plan.batch * trace.record_bytes()))),
        layer_keys_(plan.experts), seen_(plan.experts, 0) {}

  ReplayTally run() {
    slots_.resize(plan_.batch);
    while (admit()) decode_step();
    exec_.replay_ends();
    return std::move(tally_);
  }

 private:
  // What a node reads of the trace at once, for all its requests: windows, not the trace.
  static constexpr std::size_t kWindowBytes = std::size_t(256) << 10;

  // A request: one sequence's run of the stream, [next, end) still to decode, and the window of
  // its tokens read ahead.
  struct Request {
    std::size_t next = 0, end = 0;
    double admitted = 0, first_out = 0;  // when it joined the batch; when its prefill ended (or it joined)
    std::uint64_t decoded = 0;
    bool active = false;
    traces::TokenWindow window;
  };
  // A token of the current step: its index in the trace and its routing (all layers).
  struct StepToken {
    std::size_t token;
    const std::uint16_t* experts;
  };

  // Where stream position `pos` is in the spilled trace (whose order is the unrotated stream).
  std::size_t at(std::size_t pos) const { return (plan_.first_token + pos) % tokens_; }

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

  // The next request of the stream: the rest of one sequence's tokens, up to the end of the stream
  // (the wrap to the trace's first token is a sequence's start, so no request crosses it).
  void start_request(Request& r, double admitted) {
    const std::size_t begin = stream_;
    const std::size_t from = at(begin);
    const auto& sequence = trace_.sequence_at(from);
    const std::size_t end = std::min<std::size_t>(begin + (sequence.start + sequence.tokens - from), tokens_);
    stream_ = end;
    // Its prompt tokens come first in the sequence: those not before the start of the stream.
    const std::size_t prompt_end = sequence.start + sequence.prefill;
    const std::size_t prefill_end = begin + std::min(end - begin, prompt_end > from ? prompt_end - from : 0);
    r.next = prefill_end;
    r.end = end;
    r.admitted = r.first_out = admitted;
    r.decoded = 0;
    r.active = true;
    if (prefill_end > begin) {  // its prompt is prefilled as it joins, before the batch goes on
      prefill_step(from, prefill_end - begin);
      r.first_out = exec_.now();
      tally_.ttft.add(r.first_out - r.admitted);
    }
    if (r.next == r.end) r.active = false;  // a prompt without decode tokens
  }

  void prefill_step(std::size_t from, std::size_t count) {
    trace_.read(from, count, prompt_);  // whole: the prompt is one step
    step_tokens_.clear();
    for (std::size_t p = from; p < from + count; ++p) step_tokens_.push_back({prompt_.trace_index(p), prompt_.experts(p).data()});
    const double n = double(count);
    // Causal attention: prompt token j reads the j tokens before it.
    step(n * (n - 1) / 2, tally_.prefill_stall_s);
    tally_.prefill_tokens += count;
    ++tally_.prefill_steps;
    progress();
  }

  // The token a request decodes next, from its window (read on when it runs out).
  StepToken next_token(Request& r) {
    const std::size_t p = at(r.next);
    if (!r.window.holds(p)) trace_.read(p, std::min(read_ahead_, r.end - r.next), r.window);
    return {r.window.trace_index(p), r.window.experts(p).data()};
  }

  void decode_step() {
    step_tokens_.clear();
    for (auto& r : slots_)
      if (r.active) step_tokens_.push_back(next_token(r));
    const double start = exec_.now();
    step(plan_.context * double(step_tokens_.size()), tally_.stall_s);
    const double latency = exec_.now() - start;
    for (std::size_t i = 0; i < step_tokens_.size(); ++i) tally_.token_latencies.add(latency);
    tally_.step_latencies.add(latency);
    tally_.decode_tokens += step_tokens_.size();
    ++tally_.decode_steps;
    tally_.max_batch = std::max(tally_.max_batch, static_cast<std::uint32_t>(step_tokens_.size()));
    for (auto& r : slots_) {
      if (!r.active) continue;
      ++r.decoded;
      if (++r.next < r.end) continue;
      r.active = false;
      tally_.tpot.add((exec_.now() - r.first_out) / double(r.decoded));
    }
    progress();
  }

  void progress() {
    if (plan_.progress) plan_.progress(tally_.decode_tokens + tally_.prefill_tokens, tokens_);
  }

  // The top_k expert ids of a step token at a layer.
  std::span<const std::uint16_t> routed(const StepToken& t, std::uint32_t layer) const {
    return {t.experts + std::size_t{layer} * plan_.top_k, plan_.top_k};
  }

  // The step of step_tokens_ through every layer; adds the time it waited for experts to `stall`.
  void step(double context_tokens, double& stall) {
    const auto n = static_cast<std::uint32_t>(step_tokens_.size());
    if (plan_.dense_time) exec_.compute(plan_.dense_time({n, 0, context_tokens}));
    for (std::uint32_t layer = 0; layer < plan_.replays_layer.size(); ++layer) {
      if (!plan_.replays_layer[layer]) continue;
      const std::span<const ExpertKey> keys = layer_union(layer);
      lookups(layer, keys, stall);
      const auto& first = step_tokens_.front();
      exec_.layer_routed(first.token, {first.experts, per_token_}, layer, keys);
      if (plan_.layer_time) exec_.compute(plan_.layer_time({n, static_cast<std::uint32_t>(keys.size()), context_tokens}));
    }
  }

  // The distinct experts the step's tokens chose at `layer`, in order of first choice (at batch 1
  // the token's own experts in rank order), in layer_keys_.
  std::span<const ExpertKey> layer_union(std::uint32_t layer) {
    exec_.layer_begins({layer_keys_.data(), plan_.top_k});
    ++stamp_;
    std::size_t size = 0;
    for (const auto& token : step_tokens_)
      for (const auto expert : routed(token, layer)) {
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
    for (const auto& token : step_tokens_) {
      const auto experts = routed(token, layer);
      for (std::size_t k = 0; k < experts.size(); ++k) {
        ++tally_.accesses;
        const ExpertKey key = expert_key(layer, experts[k], plan_.experts);
        const double wait_start = exec_.now();
        exec_.before_lookup(key);  // may wait for the expert's prefetch
        const auto access = cache_.access(key, keys);
        if (!access.hit) {
          if (access.evicted) exec_.evicted(*access.evicted);
          Access miss{token.token, layer, experts[k], key};
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

  const traces::SpilledTrace& trace_;
  const ReplayPlan& plan_;
  ExpertCache& cache_;
  ReplayExecutor& exec_;
  ExpertCache* host_;
  const std::size_t tokens_;
  const std::size_t per_token_;            // expert ids of a token, all layers
  const std::size_t read_ahead_;           // tokens a request's window holds
  std::size_t stream_ = 0;                 // stream position of the next request
  std::vector<Request> slots_;
  traces::TokenWindow prompt_;             // the prompt being prefilled
  std::vector<StepToken> step_tokens_;     // the current step's
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
  r.expert_accesses += t.accesses;
  r.tokens += t.decode_tokens;
  r.stall_s += t.stall_s;
  r.token_latencies.merge(t.token_latencies);
  auto& s = r.serving;
  s.decode_steps += t.decode_steps;
  s.prefill_steps += t.prefill_steps;
  s.prefill_tokens += t.prefill_tokens;
  s.max_batch = std::max(s.max_batch, t.max_batch);
  s.host_hits += t.host_hits;
  s.prefill_stall_s += t.prefill_stall_s;
  s.step_latencies.merge(t.step_latencies);
  s.ttft.merge(t.ttft);
  s.tpot.merge(t.tpot);
}

ReplayTally replay(const traces::SpilledTrace& trace, const ReplayPlan& plan, ExpertCache& cache,
                   ReplayExecutor& exec, ExpertCache* host) {
  if (trace.tokens() == 0) {
    exec.replay_ends();
    return {};
  }
  return Replay(trace, plan, cache, exec, host).run();
}

}  // namespace rmai::cache
