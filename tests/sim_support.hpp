#pragma once
// Runs the simulator in a child process for tests: SimGrid allows one engine per process, and
// each test needs a fresh one. The child sends the results back through a pipe.
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "traces/experiment_trace.hpp"
#include "sim/replay.hpp"

namespace rmai::testing {

struct SimOutcome {
  std::vector<metrics::SwitchRecord> switches;
  std::vector<double> token_latencies;
  std::uint64_t accesses = 0, faults = 0, transitions = 0;
  metrics::TierBytes bytes;
  double simulated_time = 0;
  std::string summary;  // summary.json's text
  sim::TransferCounts transfers;  // how the child's simulate() timed its transfers
};

namespace detail {
inline void write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n <= 0) _exit(3);
    p += n, size -= std::size_t(n);
  }
}
inline bool read_all(int fd, void* data, std::size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n <= 0) return false;
    p += n, size -= std::size_t(n);
  }
  return true;
}
template <class T>
void send_vector(int fd, const std::vector<T>& v) {
  const std::size_t n = v.size();
  write_all(fd, &n, sizeof n);
  write_all(fd, v.data(), n * sizeof(T));
}
template <class T>
bool receive_vector(int fd, std::vector<T>& v) {
  std::size_t n = 0;
  if (!read_all(fd, &n, sizeof n)) return false;
  v.resize(n);
  return read_all(fd, v.data(), n * sizeof(T));
}
}  // namespace detail

inline SimOutcome simulate_in_child(const spec::Experiment& e, const traces::RoutingTrace& trace,
                                    const std::vector<std::string>& simgrid_args = {}) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    metrics::RunResult r;
    try {
      r = sim::simulate(e, trace, simgrid_args);
    } catch (...) {
      _exit(2);
    }
    if (r.token_latencies.values().size() != r.token_latencies.count()) _exit(3);  // past the kept values: too long for a test
    const std::uint64_t counts[3] = {r.expert_accesses, r.page_faults, r.user_kernel_transitions};
    detail::write_all(fds[1], counts, sizeof counts);
    detail::write_all(fds[1], &r.bytes, sizeof r.bytes);
    detail::write_all(fds[1], &r.simulated_time_s, sizeof r.simulated_time_s);
    detail::send_vector(fds[1], r.switches.records());
    detail::send_vector(fds[1], r.token_latencies.values());
    const std::string summary = metrics::summary_json(r);
    detail::send_vector(fds[1], std::vector<char>(summary.begin(), summary.end()));
    const sim::TransferCounts transfers = sim::transfer_counts();
    detail::write_all(fds[1], &transfers, sizeof transfers);
    ::close(fds[1]);
    _exit(0);
  }
  ::close(fds[1]);
  SimOutcome out;
  std::uint64_t counts[3];
  const bool ok = detail::read_all(fds[0], counts, sizeof counts) && detail::read_all(fds[0], &out.bytes, sizeof out.bytes) &&
                  detail::read_all(fds[0], &out.simulated_time, sizeof out.simulated_time) &&
                  detail::receive_vector(fds[0], out.switches) && detail::receive_vector(fds[0], out.token_latencies);
  std::vector<char> summary;
  const bool got_summary = ok && detail::receive_vector(fds[0], summary) &&
                           detail::read_all(fds[0], &out.transfers, sizeof out.transfers);
  out.summary.assign(summary.begin(), summary.end());
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!got_summary || !WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("simulation child failed");
  out.accesses = counts[0];
  out.faults = counts[1];
  out.transitions = counts[2];
  return out;
}

inline spec::Experiment quickstart(const std::vector<std::string>& sets) {
  return spec::load_experiment(std::string(RMAI_SOURCE_DIR) + "/experiments/quickstart.yaml", sets);
}

inline traces::RoutingTrace synthetic_trace(const spec::Experiment& e) {
  return traces::experiment_trace(e);
}

}  // namespace rmai::testing
