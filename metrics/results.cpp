#include "metrics/results.hpp"

#include <cerrno>
#include <cstring>
#include <unistd.h>
#include <cstdlib>
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>

#include "config/errors.hpp"
#include "posix/files.hpp"

namespace rmai::metrics {
namespace fs = std::filesystem;

std::string summary_json(const RunResult& r) {
  const auto latency = r.switches.latency();
  const auto tokens = r.token_latencies.summary();
  nlohmann::ordered_json j;
  j["schema"] = 1;
  j["mode"] = r.mode;
  j["model"] = r.model;
  j["tier"] = r.tier;
  j["nodes"] = r.nodes;
  j["tokens"] = r.tokens;
  j["expert_accesses"] = r.expert_accesses;
  j["expert_switches"] = r.switches.size();
  j["expert_switch_s"] = {{"mean", latency.mean}, {"p50", latency.p50}, {"p95", latency.p95},
                          {"p99", latency.p99},   {"max", latency.max}};
  j["token_latency_s"] = {{"mean", tokens.mean}, {"p50", tokens.p50}, {"p95", tokens.p95}, {"p99", tokens.p99}};
  j["tokens_per_s"] = r.tokens_per_s();
  // Accesses served without a switch on demand: a prefetched expert counts as a hit (waiting for a
  // prefetch still in flight shows in the token latency, not here).
  const double demand_switches = double(r.switches.size() - r.prefetches);
  j["cache_hit_rate"] = r.expert_accesses ? 1.0 - demand_switches / double(r.expert_accesses) : 0.0;
  j["page_faults"] = r.page_faults;
  j["user_kernel_transitions"] = r.user_kernel_transitions;
  j["bytes"] = {{"remote", r.bytes.remote}, {"disk", r.bytes.disk}, {"cxl", r.bytes.cxl}, {"pcie", r.bytes.pcie}};
  j["simulated_time_s"] = r.simulated_time_s;
  j["wall_time_s"] = r.wall_time_s;
  // Extensions beyond docs/interfaces.md.
  j["cache_policy"] = r.policy;
  j["gpu_experts"] = r.gpu_experts;
  j["pool_bytes"] = r.pool_bytes;
  j["prefetch"] = r.prefetch;
  j["prefetches"] = r.prefetches;
  j["prefetch_hits"] = r.prefetch_hits;
  j["prefetch_wasted_bytes"] = r.prefetch_wasted_bytes;
  // What the hit rate does not show: the time a token waits for its experts, prefetched or not.
  j["stall_s_per_token"] = r.tokens ? r.stall_s / double(r.tokens) : 0.0;
  const auto& s = r.serving;
  j["tokens_per_s_per_node"] = r.tokens_per_s_per_node();
  j["serving"] = {{"batch", s.batch},
                  {"prompt", s.prompt},
                  {"context", s.context},
                  {"concurrency", s.concurrency},
                  {"host_experts", s.host_experts},
                  {"decode_steps", s.decode_steps},
                  {"mean_batch", s.decode_steps ? double(r.tokens) / double(s.decode_steps) : 0.0},
                  {"max_batch", s.max_batch},
                  {"prefill_steps", s.prefill_steps},
                  {"prefill_tokens", s.prefill_tokens},
                  {"host_hits", s.host_hits},
                  {"prefill_stall_s", s.prefill_stall_s}};
  // With its count: no requests with a prompt is 0 TTFTs, not an instant first token.
  const auto distribution = [](const StreamingSummary& values) {
    const auto d = values.summary();
    return nlohmann::ordered_json{{"count", values.count()}, {"mean", d.mean}, {"p50", d.p50},
                                  {"p95", d.p95},           {"p99", d.p99},   {"max", d.max}};
  };
  j["step_latency_s"] = distribution(s.step_latencies);
  j["ttft_s"] = distribution(s.ttft);
  j["tpot_s"] = distribution(s.tpot);
  if (r.emul) {
    const auto& e = *r.emul;
    const auto& f = e.fault_latency_s;
    const auto& g = e.registrations;
    const auto mean = [](double total, std::uint64_t n) { return n ? total / double(n) : 0.0; };
    j["emul"] = {{"layout", e.layout}, {"granularity", e.granularity}, {"source", e.source}, {"scale", e.scale},
                 {"object_bytes", e.object_bytes}, {"objects", e.objects}, {"reads_issued", e.reads_issued},
                 {"handler_system_calls", e.handler_system_calls},
                 {"registration",
                  {{"needed", g.needed},
                   {"registrations", g.registered},
                   {"deregistrations", g.deregistered},
                   {"bytes", g.bytes},
                   {"register_s_mean", mean(g.register_s, g.registered)},
                   {"deregister_s_mean", mean(g.deregister_s, g.deregistered)}}},
                 {"fault_latency_s", {{"mean", f.mean}, {"p50", f.p50}, {"p95", f.p95}, {"p99", f.p99}, {"max", f.max}}}};
  }
  if (r.cost)
    j["cost"] = {{"prices", r.cost->prices},
                 {"node_usd", r.cost->node_usd},
                 {"memory_usd_per_node", r.cost->memory_usd_per_node},
                 {"usd_per_million_tokens", r.cost->usd_per_million_tokens}};
  return j.dump(2) + "\n";
}

std::string write_results(const fs::path& dir, const RunResult& result, const YAML::Node& resolved_config) {
  fs::create_directories(dir);
  YAML::Emitter yaml;
  yaml << resolved_config;
  std::string summary = summary_json(result);
  std::vector<std::pair<fs::path, std::string>> files{{dir / "config.resolved.yaml", std::string(yaml.c_str()) + "\n"}};
  std::vector<posix::TemporaryFile*> streamed;
  fs::path switches = dir / switches_file_name(false);
  if (auto* file = result.switches.file()) {  // complete
    switches = file->path();
    if (switches != dir / switches.filename())
      throw std::logic_error("the switch log streams into " + switches.string() + ", not into " + dir.string());
    streamed.push_back(file);
  } else {
    files.emplace_back(switches, result.switches.csv(result.tier));
  }
  files.emplace_back(dir / "summary.json", summary);  // last: its presence marks a complete result
  posix::write_files_atomic(files, streamed);
  // A previous run's switch file of the other form would pass for this run's.
  std::error_code ec;
  for (const bool zstd : {false, true})
    if (dir / switches_file_name(zstd) != switches) fs::remove(dir / switches_file_name(zstd), ec);
  return summary;
}

void check_results_dir(const std::filesystem::path& dir, const std::string& option) {
  namespace fs = std::filesystem;
  const std::string where = option + " " + dir.string();
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) throw InputError(where, "exists and is not a directory");
  fs::path existing = fs::absolute(dir, ec);
  while (!existing.empty() && !fs::exists(existing, ec) && existing.has_parent_path() && existing != existing.parent_path())
    existing = existing.parent_path();
  if (!fs::is_directory(existing, ec)) throw InputError(where, existing.string() + " is not a directory");
  std::string probe = (existing / ".rmai-write-check-XXXXXX").string();
  if (!::mkdtemp(probe.data())) {
    const std::string why = "cannot write in " + existing.string() + ": " + std::strerror(errno);
    // A place the user may not write to is a bad --out; a full disk or a failing one is not.
    if (errno == ENOSPC || errno == EDQUOT || errno == EIO) throw std::runtime_error(where + ": " + why);
    throw InputError(where, why);
  }
  ::rmdir(probe.c_str());
}

}  // namespace rmai::metrics
