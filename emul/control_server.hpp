#pragma once
// The memory server's control plane, server side: one thread serves every handshake at once with
// poll(), so that no client (idle, slow, garbage-sending, or one of a flood) can keep another waiting.
//
// - A connection has `handshake_timeout_s` to send its hello and take the answer; then it is closed.
// - At most `max_handshakes` connections are in their handshake at once. A new one pushes out the
//   oldest: a legitimate client sends its hello at once, so only a flood faster than one round trip
//   can push it out, and idle connections cannot fill the table.
// - Wrong secrets from one address are answered later and later (doubling from `backoff_first_s` up
//   to `backoff_max_s`, forgotten after `backoff_forget_s` without one). A right secret is answered
//   at once, so a legitimate client on the same address is never slowed by a guesser.
// - Refusals are logged at most once per `log_interval_s`; the ones in between are summarised by
//   address and reason in the next line.
// - Connected clients stay silent (control.hpp): EOF means the client is gone, data is a violation.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "emul/control.hpp"

namespace rmai::emul {

struct ControlServerOptions {
  std::string secret;
  double handshake_timeout_s = 2;
  std::size_t max_handshakes = 64;
  std::size_t max_clients = 4096;  // one per inference node at most (spec::kMaxNodes)
  double backoff_first_s = 0.05;
  double backoff_max_s = 10;
  double backoff_forget_s = 60;
  double log_interval_s = 1;
};

class ControlServer {
 public:
  using Log = std::function<void(const std::string&)>;
  // Serves on `listener` (not owned), answering right secrets with `welcome`.
  ControlServer(const ControlListener& listener, Welcome welcome, ControlServerOptions options, Log log);
  ~ControlServer();  // closes every connection
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Serves until `stop_fd` becomes readable (an eventfd the owner writes), then closes every
  // connection and flushes the log's summary.
  void serve(int stop_fd);

  // Counters, readable from any thread.
  std::uint64_t accepted() const { return accepted_; }    // handshakes that succeeded
  std::uint64_t refused() const { return refused_; }      // wrong secret, broken hello, timeout, pushed out
  std::uint64_t connected() const { return connected_; }  // clients connected now

 private:
  using Clock = std::chrono::steady_clock;
  struct Handshake {
    int fd = -1;
    std::string peer;     // ip:port, for logs
    std::string address;  // ip, for the backoff
    Clock::time_point deadline;
    std::string received;           // the hello so far
    std::string answer;             // the frame to send, once the hello is checked
    std::size_t sent = 0;
    Clock::time_point answer_from;  // not before (the backoff of wrong secrets)
    bool welcome = false;
    bool refused = false;  // counted and logged as refused; the answer may still be on its way
  };
  struct Client {
    int fd = -1;
    std::string peer;
  };
  struct Guesser {  // an address that sent wrong secrets
    unsigned failures = 0;
    Clock::time_point last;
  };

  void accept_new(Clock::time_point now);
  // Reads the hello, decides, writes the answer: false once the handshake is over (fd closed or
  // moved to clients_).
  bool advance(Handshake& h, short revents, Clock::time_point now);
  bool decide(Handshake& h, Clock::time_point now);  // false: refused and closed
  // Counts, logs (`reason` is the summary's category, `detail` the first line's text) and closes.
  void refuse(Handshake& h, const std::string& reason, const std::string& detail);
  Clock::duration backoff(const std::string& address, Clock::time_point now);
  void note_refusal(const std::string& peer, const std::string& address, const std::string& reason,
                    const std::string& detail);
  void flush_log(Clock::time_point now, bool force);
  int timeout_ms(Clock::time_point now) const;

  const ControlListener& listener_;
  std::string welcome_frame_;
  ControlServerOptions options_;
  Log log_;
  std::vector<Handshake> handshakes_;  // oldest first
  std::vector<Client> clients_;
  std::map<std::string, Guesser> guessers_;
  Clock::time_point accept_paused_until_{};  // after EMFILE: the listener stays readable
  // Refusals not logged yet, by "address: reason", and when the current log interval ends.
  std::map<std::string, std::uint64_t> unlogged_;
  Clock::time_point log_interval_end_{};
  std::atomic<std::uint64_t> accepted_{0}, refused_{0}, connected_{0};
};

}  // namespace rmai::emul
