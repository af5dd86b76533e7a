#include "emul/control_server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

namespace rmai::emul {
namespace {

using Clock = std::chrono::steady_clock;

// Bounds of the bookkeeping a hostile peer could otherwise grow: addresses remembered for the
// backoff, and "address: reason" entries of the log's summary (the rest are summed as "others").
constexpr std::size_t kMaxGuessers = 1024;
constexpr std::size_t kMaxSummaryEntries = 64;
// After accept() fails for lack of file descriptors the listener stays readable: wait this long
// before trying again instead of spinning.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

Clock::duration seconds(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

// "ip" of "ip:port" or "[v6]:port".
std::string address_of(const std::string& peer) {
  std::string address = peer.substr(0, peer.rfind(':'));
  if (address.size() >= 2 && address.front() == '[') address = address.substr(1, address.size() - 2);
  return address;
}

std::string seconds_text(double s) {
  std::ostringstream out;
  out << s << " s";
  return out.str();
}

}  // namespace

ControlServer::ControlServer(const ControlListener& listener, Welcome welcome, ControlServerOptions options, Log log)
    : listener_(listener), welcome_frame_(welcome_frame(welcome)), options_(std::move(options)), log_(std::move(log)) {}

ControlServer::~ControlServer() {
  for (const auto& h : handshakes_) ::close(h.fd);
  for (const auto& c : clients_) ::close(c.fd);
}

void ControlServer::serve(int stop_fd) {
  std::vector<pollfd> fds;
  for (;;) {
    auto now = Clock::now();
    fds.clear();
    fds.push_back({stop_fd, POLLIN, 0});
    fds.push_back({now >= accept_paused_until_ ? listener_.fd() : -1, POLLIN, 0});
    for (const auto& h : handshakes_) {
      const short events = h.answer.empty() ? POLLIN : (now >= h.answer_from ? POLLOUT : 0);
      fds.push_back({h.fd, events, 0});
    }
    for (const auto& c : clients_) fds.push_back({c.fd, POLLIN | POLLRDHUP, 0});

    if (::poll(fds.data(), fds.size(), timeout_ms(now)) < 0) {
      if (errno == EINTR) continue;
      log_(std::string("control poll failed: ") + std::strerror(errno));
      break;
    }
    if (fds[0].revents) break;
    now = Clock::now();

    // Clients first: advancing a handshake may append to clients_, beyond what was polled.
    const std::size_t polled_handshakes = handshakes_.size();
    for (std::size_t i = clients_.size(); i-- > 0;) {
      if (fds[2 + polled_handshakes + i].revents == 0) continue;
      char byte;
      const ssize_t n = ::recv(clients_[i].fd, &byte, 1, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      // Clients send nothing after the hello: readable means EOF (or a protocol violation).
      log_("client " + clients_[i].peer + (n > 0 ? " sent data after the handshake; closed" : " disconnected"));
      ::close(clients_[i].fd);
      clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(i));
      --connected_;
    }
    std::vector<Handshake> ongoing;
    ongoing.reserve(handshakes_.size());
    for (std::size_t i = 0; i < handshakes_.size(); ++i)
      if (advance(handshakes_[i], fds[2 + i].revents, now)) ongoing.push_back(std::move(handshakes_[i]));
    handshakes_ = std::move(ongoing);
    if (fds[1].revents & POLLIN) accept_new(now);
    flush_log(now, false);
  }
  for (const auto& h : handshakes_) ::close(h.fd);
  for (const auto& c : clients_) ::close(c.fd);
  handshakes_.clear();
  clients_.clear();
  connected_ = 0;
  flush_log(Clock::now(), true);
}

void ControlServer::accept_new(Clock::time_point now) {
  // At most half the table per wake-up: a connection accepted now has its hello read before a
  // flood can push it out, and the flood cannot starve the other connections.
  const std::size_t per_wake = std::max<std::size_t>(1, options_.max_handshakes / 2);
  for (std::size_t i = 0; i < per_wake; ++i) {
    const int fd = ::accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: free one and take a breath rather than spin on the
        // listener, which stays readable.
        if (!handshakes_.empty()) {
          refuse(handshakes_.front(), "pushed out", std::string("pushed out: ") + std::strerror(errno));
          handshakes_.erase(handshakes_.begin());
        }
        accept_paused_until_ = now + kAcceptPause;
      }
      return;  // EAGAIN: the backlog is empty; ECONNABORTED and the like: the next poll tells
    }
    if (handshakes_.size() >= options_.max_handshakes) {
      refuse(handshakes_.front(), "pushed out",
             "pushed out by newer connections (more than " + std::to_string(options_.max_handshakes) +
                 " handshakes at once)");
      handshakes_.erase(handshakes_.begin());
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Handshake h;
    h.fd = fd;
    h.peer = peer_name(fd);
    h.address = address_of(h.peer);
    h.deadline = now + seconds(options_.handshake_timeout_s);
    handshakes_.push_back(std::move(h));
  }
}

bool ControlServer::advance(Handshake& h, short revents, Clock::time_point now) {
  if (now >= h.deadline) {
    refuse(h, "no hello", h.answer.empty() ? "no hello within " + seconds_text(options_.handshake_timeout_s)
                                           : "did not take the answer in time");
    return false;
  }
  if (h.answer.empty()) {
    if (revents == 0) return true;
    for (;;) {
      const auto missing = hello_bytes_missing(h.received);
      if (!missing) {
        refuse(h, "broken hello", "hello longer than " + std::to_string(kMaxHello) + " bytes");
        return false;
      }
      if (*missing == 0) {
        if (!decide(h, now)) return false;
        break;
      }
      char buffer[512];
      const ssize_t n = ::recv(h.fd, buffer, std::min(*missing, sizeof buffer), MSG_DONTWAIT);
      if (n > 0) {
        h.received.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
      refuse(h, "no hello", "closed before its hello was complete");
      return false;
    }
  }
  if (now < h.answer_from) return true;
  while (h.sent < h.answer.size()) {
    const ssize_t n = ::send(h.fd, h.answer.data() + h.sent, h.answer.size() - h.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      h.sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return true;
    } else {
      if (h.welcome) {
        --accepted_;
        --connected_;
        log_("client " + h.peer + " went away during the handshake");
      }
      ::close(h.fd);
      return false;
    }
  }
  if (h.welcome)
    clients_.push_back({h.fd, h.peer});
  else
    ::close(h.fd);  // the refusal is sent
  return false;
}

bool ControlServer::decide(Handshake& h, Clock::time_point now) {
  std::string why;
  switch (check_hello(h.received, options_.secret, why)) {
    case Hello::Broken:
      refuse(h, "broken hello", why);
      return false;
    case Hello::WrongSecret: {
      ++refused_;
      h.refused = true;
      note_refusal(h.peer, h.address, "wrong secret", why);
      h.answer = refusal_frame("refused: wrong secret (check the secret file)");
      h.answer_from = now + backoff(h.address, now);
      h.deadline = h.answer_from + seconds(options_.handshake_timeout_s);
      return true;
    }
    case Hello::Right:
      if (clients_.size() >= options_.max_clients) {
        ++refused_;
        h.refused = true;
        const std::string full = "memd serves at most " + std::to_string(options_.max_clients) + " clients at once";
        note_refusal(h.peer, h.address, "full", full);
        h.answer = refusal_frame("refused: " + full);
        h.answer_from = now;
        return true;
      }
      // Counted and logged before the client hears the answer, so that what a client saw is
      // already in the log.
      ++accepted_;
      ++connected_;
      log_("client " + h.peer + " connected");
      h.answer = welcome_frame_;
      h.answer_from = now;
      h.welcome = true;
      return true;
  }
  return false;
}

void ControlServer::refuse(Handshake& h, const std::string& reason, const std::string& detail) {
  if (!h.refused) {  // a wrong secret waiting for its answer is counted already
    ++refused_;
    note_refusal(h.peer, h.address, reason, detail);
  }
  ::close(h.fd);
  h.fd = -1;
}

Clock::duration ControlServer::backoff(const std::string& address, Clock::time_point now) {
  if (guessers_.size() >= kMaxGuessers && !guessers_.count(address)) {
    std::erase_if(guessers_, [&](const auto& g) { return now - g.second.last > seconds(options_.backoff_forget_s); });
    if (guessers_.size() >= kMaxGuessers)
      guessers_.erase(std::min_element(guessers_.begin(), guessers_.end(),
                                       [](const auto& a, const auto& b) { return a.second.last < b.second.last; }));
  }
  Guesser& g = guessers_[address];
  if (now - g.last > seconds(options_.backoff_forget_s)) g.failures = 0;
  g.failures = std::min(g.failures + 1, 64u);
  g.last = now;
  const double delay = std::min(options_.backoff_max_s, options_.backoff_first_s * std::ldexp(1.0, int(g.failures) - 1));
  return seconds(delay);
}

void ControlServer::note_refusal(const std::string& peer, const std::string& address, const std::string& reason,
                                 const std::string& detail) {
  const auto now = Clock::now();
  if (now >= log_interval_end_ && unlogged_.empty()) {
    log_("refused client " + peer + ": " + detail);
    log_interval_end_ = now + seconds(options_.log_interval_s);
    return;
  }
  std::string key = address + " " + reason;
  if (!unlogged_.count(key) && unlogged_.size() >= kMaxSummaryEntries) key = "others";
  ++unlogged_[key];
}

void ControlServer::flush_log(Clock::time_point now, bool force) {
  if (unlogged_.empty() || (!force && now < log_interval_end_)) return;
  std::uint64_t total = 0;
  std::string parts;
  for (const auto& [key, count] : unlogged_) {
    total += count;
    parts += (parts.empty() ? "" : ", ") + key + " x" + std::to_string(count);
  }
  log_("refused " + std::to_string(total) + " more client" + (total == 1 ? "" : "s") + " within " +
       seconds_text(options_.log_interval_s) + ": " + parts);
  unlogged_.clear();
  log_interval_end_ = now + seconds(options_.log_interval_s);
}

int ControlServer::timeout_ms(Clock::time_point now) const {
  auto next = Clock::time_point::max();
  for (const auto& h : handshakes_) {
    next = std::min(next, h.deadline);
    if (!h.answer.empty() && h.answer_from > now) next = std::min(next, h.answer_from);
  }
  if (!unlogged_.empty()) next = std::min(next, log_interval_end_);
  if (accept_paused_until_ > now) next = std::min(next, accept_paused_until_);
  if (next == Clock::time_point::max()) return -1;
  if (next <= now) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
  return static_cast<int>(std::min<long long>(ms, 60'000));
}

}  // namespace rmai::emul
