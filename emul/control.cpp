#include "emul/control.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <system_error>

#include "config/errors.hpp"
#include "config/tree.hpp"
#include "emul/source.hpp"
#include "posix/deadline.hpp"
#include "posix/errors.hpp"

namespace rmai::emul {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kMagic = 0x49414D52;  // "RMAI" in little-endian bytes
constexpr std::uint32_t kVersion = 1;
constexpr std::uint8_t kWelcome = 0;
constexpr std::uint8_t kRefused = 1;
// Larger than any catalog's welcome (28 bytes per object: a million objects fit) and small enough
// that a garbage length cannot make us allocate much.
constexpr std::uint32_t kMaxFrame = 32u << 20;

class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) { raw(v); }
  void u64(std::uint64_t v) { raw(v); }
  void f64(double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    raw(bits);
  }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
  }
  std::string frame() const {
    std::string f;
    const auto n = static_cast<std::uint32_t>(out_.size());
    for (int i = 0; i < 4; ++i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    return f + out_;
  }

 private:
  template <typename T>
  void raw(T v) {
    for (std::size_t i = 0; i < sizeof(T); ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::uint8_t u8() { return static_cast<std::uint8_t>(take(1)[0]); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(raw(4)); }
  std::uint64_t u64() { return raw(8); }
  double f64() {
    const std::uint64_t bits = raw(8);
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  std::string str() {
    const std::uint32_t n = u32();
    return std::string(take(n));
  }

 private:
  std::uint64_t raw(std::size_t n) {
    const std::string_view b = take(n);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t(static_cast<unsigned char>(b[i])) << (8 * i);
    return v;
  }
  std::string_view take(std::size_t n) {
    if (n > in_.size() - pos_) throw std::runtime_error("truncated message");
    const std::string_view out = in_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

using posix::ms_left;

// Waits for `events` on fd until the deadline; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, ms_left(deadline));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) posix::throw_errno("poll");
  }
}

// Sends all of `data`; false if the peer is gone or the deadline passed.
bool send_all(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(fd, POLLOUT, deadline)) return false;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

// Receives exactly n bytes; false on EOF, error or deadline.
bool recv_all(int fd, char* out, std::size_t n, Clock::time_point deadline) {
  while (n > 0) {
    const ssize_t got = ::recv(fd, out, n, MSG_DONTWAIT);
    if (got > 0) {
      out += got;
      n -= static_cast<std::size_t>(got);
    } else if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(fd, POLLIN, deadline)) return false;
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

// The payload length a frame's 4-byte header announces.
std::uint32_t frame_length(std::string_view header) {
  const auto* h = reinterpret_cast<const unsigned char*>(header.data());
  return h[0] | (h[1] << 8) | (h[2] << 16) | (std::uint32_t(h[3]) << 24);
}

// One frame's payload, or nothing on EOF/error/timeout/oversize.
std::optional<std::string> recv_frame(int fd, std::uint32_t max, Clock::time_point deadline) {
  char header[4];
  if (!recv_all(fd, header, 4, deadline)) return std::nullopt;
  const std::uint32_t n = frame_length({header, 4});
  if (n > max) return std::nullopt;
  std::string payload(n, '\0');
  if (!recv_all(fd, payload.data(), n, deadline)) return std::nullopt;
  return payload;
}

Clock::time_point deadline_after(double seconds) { return posix::deadline_after(seconds); }

Welcome decode_welcome(Reader& in) {
  Welcome w;
  w.provider = in.str();
  const std::string address = in.str();
  w.fabric_address.assign(address.begin(), address.end());
  w.catalog.model = in.str();
  w.catalog.moe_layers = in.u32();
  w.catalog.experts = in.u32();
  w.catalog.expert_bytes = in.f64();
  w.catalog.scale = in.f64();
  const std::uint32_t layers = in.u32();
  if (layers > kMaxFrame / 4) throw std::runtime_error("too many layers");
  for (std::uint32_t i = 0; i < layers; ++i) w.catalog.layers.push_back(in.u32());
  w.catalog.seed = in.u64();
  w.object_bytes = in.u64();
  const std::uint32_t count = in.u32();
  if (count > kMaxFrame / 28) throw std::runtime_error("too many objects");
  w.objects.resize(count);
  for (auto& o : w.objects) {
    o.id = in.u32();
    o.address = in.u64();
    o.length = in.u64();
    o.key = in.u64();
  }
  return w;
}

std::string address_text(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
    port = ntohs(in->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

std::string join_layers(const std::vector<std::uint32_t>& layers) {
  if (layers.empty()) return "all";
  std::vector<std::string> items;
  for (const auto l : layers) items.push_back(std::to_string(l));
  return config::join(items, ",");
}

struct AddrInfoDeleter {
  void operator()(addrinfo* a) const { freeaddrinfo(a); }
};

std::unique_ptr<addrinfo, AddrInfoDeleter> resolve(const std::string& host, std::uint16_t port, bool passive,
                                                   const std::string& where) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* out = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &out);
  if (rc != 0) throw InputError(where, "cannot resolve '" + host + "': " + gai_strerror(rc));
  return std::unique_ptr<addrinfo, AddrInfoDeleter>(out);
}

}  // namespace

std::pair<std::string, std::uint16_t> parse_host_port(const std::string& text, const std::string& where) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw InputError(where, "'" + text + "' is not HOST:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) throw InputError(where, "'" + text + "' is not HOST:PORT");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535)
    throw InputError(where, "'" + text + "' is not HOST:PORT (port 0-65535)");
  return {host, static_cast<std::uint16_t>(std::stoul(port))};
}

std::string read_secret_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(file.string(), "cannot read the memd secret file");
  // Bounded: a secret is a line of text, and the file might be /dev/zero or a device that never ends.
  std::string secret(kMaxSecretBytes + 1, '\0');
  in.read(secret.data(), std::streamsize(secret.size()));
  secret.resize(static_cast<std::size_t>(in.gcount()));
  if (secret.size() > kMaxSecretBytes)
    throw InputError(file.string(), "longer than " + std::to_string(kMaxSecretBytes) + " bytes: not a memd secret file");
  const auto first = secret.find_first_not_of(" \t\r\n");
  const auto last = secret.find_last_not_of(" \t\r\n");
  secret = first == std::string::npos ? "" : secret.substr(first, last - first + 1);
  if (secret.empty()) throw InputError(file.string(), "the memd secret file is empty");
  if (secret.size() < kMinSecretChars)
    throw InputError(file.string(), "the memd secret is " + std::to_string(secret.size()) + " characters; at least " +
                                        std::to_string(kMinSecretChars) + " are needed");
  return secret;
}

bool secrets_equal(std::string_view a, std::string_view b) {
  // Every byte of the longer one is visited whatever the contents; only the lengths leak.
  const std::size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  // Keeps the compiler from turning the loop into an early-exit comparison.
  return *static_cast<volatile unsigned char*>(&diff) == 0;
}

void check_catalog(const Welcome& served, const Catalog& mine, const std::string& server) {
  const auto& s = served.catalog;
  const auto& m = mine.spec();
  const auto differ = [&](const std::string& key, const std::string& theirs, const std::string& ours) {
    throw InputError(key, "memd at " + server + " serves " + theirs + " but this run has " + ours +
                              " (start memd with the same experiment and --set options)");
  };
  if (s.model != m.model) differ("model", s.model, m.model);
  if (s.seed != m.seed) differ("seed", std::to_string(s.seed), std::to_string(m.seed));
  if (s.layers != m.layers) differ("emul.layers", "layers " + join_layers(s.layers), "layers " + join_layers(m.layers));
  if (served.object_bytes != mine.object_bytes())
    differ("emul.scale", "objects of " + std::to_string(served.object_bytes) + " bytes",
           std::to_string(mine.object_bytes()) + " bytes");
  if (served.objects.size() != mine.objects().size())
    differ("model", std::to_string(served.objects.size()) + " objects", std::to_string(mine.objects().size()));
  for (std::size_t i = 0; i < served.objects.size(); ++i)
    if (served.objects[i].id != i || served.objects[i].length != mine.object_bytes())
      throw TransportError("memd at " + server + " sent a malformed object table (entry " + std::to_string(i) + ")");
}

ControlListener::ControlListener(const std::string& host, std::uint16_t port) : host_(host) {
  const auto addresses = resolve(host, port, true, "--listen");
  int last_errno = 0;
  for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
    // Non-blocking: the server accepts until the backlog is empty (control_server.hpp).
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
      fd_ = fd;
      break;
    }
    last_errno = errno;
    ::close(fd);
  }
  if (fd_ < 0)
    throw std::system_error(last_errno, std::generic_category(),
                            "memd cannot listen on " + host + ":" + std::to_string(port));
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &length);
  port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

ControlListener::~ControlListener() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<std::size_t> hello_bytes_missing(std::string_view received) {
  if (received.size() < 4) return 4 - received.size();
  const std::uint32_t n = frame_length(received);
  if (n > kMaxHello) return std::nullopt;
  return 4 + std::size_t(n) - std::min<std::size_t>(received.size(), 4 + std::size_t(n));
}

Hello check_hello(std::string_view frame, const std::string& secret, std::string& why) {
  const auto missing = hello_bytes_missing(frame);
  if (!missing || *missing != 0 || frame.size() != 4 + std::size_t(frame_length(frame))) {
    why = !missing ? "hello longer than " + std::to_string(kMaxHello) + " bytes"
                   : *missing != 0 ? "incomplete hello" : "hello longer than its frame announces";
    return Hello::Broken;
  }
  std::string given;
  try {
    Reader in(frame.substr(4));
    if (in.u32() != kMagic) {
      why = "not an rmai client";
      return Hello::Broken;
    }
    if (const auto v = in.u32(); v != kVersion) {
      why = "protocol version " + std::to_string(v) + " (memd speaks " + std::to_string(kVersion) + ")";
      return Hello::Broken;
    }
    given = in.str();
  } catch (const std::exception& e) {
    why = std::string("malformed hello: ") + e.what();
    return Hello::Broken;
  }
  if (!secrets_equal(given, secret)) {
    why = "wrong secret";
    return Hello::WrongSecret;
  }
  return Hello::Right;
}

std::string welcome_frame(const Welcome& w) {
  Writer out;
  out.u8(kWelcome);
  out.str(w.provider);
  out.str(std::string_view(reinterpret_cast<const char*>(w.fabric_address.data()), w.fabric_address.size()));
  out.str(w.catalog.model);
  out.u32(w.catalog.moe_layers);
  out.u32(w.catalog.experts);
  out.f64(w.catalog.expert_bytes);
  out.f64(w.catalog.scale);
  out.u32(static_cast<std::uint32_t>(w.catalog.layers.size()));
  for (const auto l : w.catalog.layers) out.u32(l);
  out.u64(w.catalog.seed);
  out.u64(w.object_bytes);
  out.u32(static_cast<std::uint32_t>(w.objects.size()));
  for (const auto& o : w.objects) {
    out.u32(o.id);
    out.u64(o.address);
    out.u64(o.length);
    out.u64(o.key);
  }
  return out.frame();
}

std::string refusal_frame(std::string_view reason) {
  Writer out;
  out.u8(kRefused);
  out.str(reason);
  return out.frame();
}

Answer parse_answer(std::string_view payload) {
  Reader in(payload);
  Answer answer;
  const std::uint8_t status = in.u8();
  if (status == kRefused) {
    answer.refused = true;
    answer.reason = in.str();
  } else if (status == kWelcome) {
    answer.welcome = decode_welcome(in);
  } else {
    throw std::runtime_error("unknown answer " + std::to_string(status));
  }
  return answer;
}

std::string peer_name(int fd) {
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return "?";
  return address_text(reinterpret_cast<const sockaddr*>(&peer));
}

ControlClient::ControlClient(const std::string& server, const std::string& secret, double timeout_s) : server_(server) {
  const auto [host, port] = parse_host_port(server, "emul.server");
  const auto deadline = deadline_after(timeout_s);
  const auto addresses = resolve(host, port, false, "emul.server");
  std::string failure = "no address";
  for (const addrinfo* a = addresses.get(); a != nullptr && fd_ < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      if (wait_for(fd, POLLOUT, deadline)) {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
        rc = error == 0 ? 0 : -1;
        errno = error;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (rc == 0) {
      fd_ = fd;
    } else {
      failure = std::strerror(errno);
      ::close(fd);
    }
  }
  if (fd_ < 0) throw TransportError("cannot reach memd at " + server + ": " + failure);
  try {
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &length);
    local_ip_ = address_text(reinterpret_cast<const sockaddr*>(&local));
    local_ip_ = local_ip_.substr(0, local_ip_.rfind(':'));
    if (!local_ip_.empty() && local_ip_.front() == '[') local_ip_ = local_ip_.substr(1, local_ip_.size() - 2);

    Writer hello;
    hello.u32(kMagic);
    hello.u32(kVersion);
    hello.str(secret);
    if (!send_all(fd_, hello.frame(), deadline)) throw TransportError("memd at " + server + " closed the connection");
    const auto reply = recv_frame(fd_, kMaxFrame, deadline);
    if (!reply)
      throw TransportError("memd at " + server + " closed the connection or did not answer within " +
                           std::to_string(timeout_s) + " s (is it an rmai memd?)");
    Answer answer = parse_answer(*reply);
    if (answer.refused) throw TransportError("memd at " + server + " " + answer.reason);
    welcome_ = std::move(answer.welcome);
  } catch (const TransportError&) {
    ::close(fd_);
    throw;
  } catch (const std::runtime_error& e) {
    ::close(fd_);
    throw TransportError("memd at " + server + " sent a malformed welcome: " + e.what());
  }
}

ControlClient::~ControlClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool ControlClient::server_gone() const { return wait_gone(0); }

bool ControlClient::wait_gone(double timeout_s) const {
  // The server never writes after the welcome: anything readable is EOF or an error.
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  const int rc = ::poll(&p, 1, static_cast<int>(timeout_s * 1000));
  return rc > 0 && (p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace rmai::emul
