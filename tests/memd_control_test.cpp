// memd's control plane under hostile and careless peers: idle connections, garbage, oversized
// hellos, floods of wrong secrets and more connections than it keeps. A legitimate client is
// served within 1 s whatever else is connected, nothing holds a handshake slot forever, wrong
// secrets are answered later and later, and the log summarises refusals instead of one line each.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <sstream>
#include <thread>

#include "emul/control.hpp"
#include "emul/fabric.hpp"
#include "emul/memd.hpp"
#include "emul/objects.hpp"
#include "emul/remote.hpp"
#include "emul/source.hpp"

namespace rmai::emul {
namespace {

using Clock = std::chrono::steady_clock;
const std::string kSecret = "control-test-secret-0123456789ab";

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A raw TCP connection to the server's control port.
int connect_raw(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

// A hello frame as a client sends it (magic "RMAI", version 1, the secret).
std::string hello_frame(const std::string& secret) {
  std::string payload = "RMAI";
  payload += std::string("\x01\x00\x00\x00", 4);
  const auto n = static_cast<std::uint32_t>(secret.size());
  for (int i = 0; i < 4; ++i) payload.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  payload += secret;
  std::string frame;
  const auto length = static_cast<std::uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) frame.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  return frame + payload;
}

void send_bytes(int fd, const std::string& bytes) { ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), ssize_t(bytes.size())); }

// True if the server closed `fd` within `timeout_s` (reads past any answer it sent).
bool closed_within(int fd, double timeout_s) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    const int left = static_cast<int>(std::chrono::duration<double, std::milli>(deadline - Clock::now()).count());
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) continue;
    char buffer[4096];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
  }
}

// Thread-safe log sink: the server's control thread writes while the test reads.
class LogSink : public std::stringbuf {
 public:
  std::string text() {
    std::lock_guard lock(mutex_);
    return str();
  }
  int count(const std::string& what) {
    const std::string all = text();
    int n = 0;
    for (auto at = all.find(what); at != std::string::npos; at = all.find(what, at + 1)) ++n;
    return n;
  }

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    std::lock_guard lock(mutex_);
    return std::stringbuf::xsputn(s, n);
  }
  int_type overflow(int_type c) override {
    std::lock_guard lock(mutex_);
    return std::stringbuf::overflow(c);
  }

 private:
  std::recursive_mutex mutex_;  // xsputn calls overflow
};

class MemdControl : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const auto why = provider_unavailable_reason("tcp"); !why.empty()) GTEST_SKIP() << why;
    CatalogSpec spec;
    spec.model = "control-test";
    spec.moe_layers = 1;
    spec.experts = 2;
    spec.expert_bytes = 64 << 10;
    spec.layers = {0};
    catalog_ = std::make_unique<Catalog>(spec);
  }
  void TearDown() override {
    for (const int fd : fds_) ::close(fd);
  }

  void start(ControlServerOptions control = {}) {
    MemoryServerOptions options;
    options.secret = kSecret;
    options.log = &log_stream_;
    options.control = control;
    server_ = std::make_unique<MemoryServer>(*catalog_, options);
  }
  int open_raw() {
    const int fd = connect_raw(server_->port());
    EXPECT_GE(fd, 0) << std::strerror(errno);
    fds_.push_back(fd);
    return fd;
  }
  // A client handshake that must complete within 1 s.
  void expect_served_within_a_second() {
    const auto start = Clock::now();
    try {
      ControlClient client(server_->address(), kSecret, 1.0);
      EXPECT_EQ(client.welcome().objects.size(), catalog_->objects().size());
    } catch (const TransportError& e) {
      ADD_FAILURE() << "a legitimate client was not served within 1 s: " << e.what();
    }
    EXPECT_LT(seconds_since(start), 1.0);
  }

  LogSink log_;
  std::ostream log_stream_{&log_};
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<MemoryServer> server_;  // after the log: it logs until destroyed
  std::vector<int> fds_;
};

TEST_F(MemdControl, LegitimateClientIsServedWithinASecondWhateverElseIsConnected) {
  start();
  for (int i = 0; i < 100; ++i) open_raw();                                      // idle
  for (int i = 0; i < 20; ++i) send_bytes(open_raw(), std::string("\x10\x00", 2));  // half a header, then silence
  for (int i = 0; i < 20; ++i) send_bytes(open_raw(), hello_frame(kSecret).substr(0, 12));  // a hello cut short
  for (int i = 0; i < 10; ++i) send_bytes(open_raw(), std::string("\xff\xff\xff\x7f", 4) + "garbage");  // 2 GB announced
  // A flood of wrong secrets from another thread for the whole test, never reading an answer.
  std::atomic<bool> flooding{true};
  std::atomic<int> flood_connections{0};
  std::thread flood([&] {
    std::deque<int> open;
    const std::string wrong = hello_frame("not-the-secret-but-just-as-long!");
    while (flooding) {
      const int fd = connect_raw(server_->port());
      if (fd < 0) continue;
      ::send(fd, wrong.data(), wrong.size(), MSG_NOSIGNAL);
      open.push_back(fd);
      ++flood_connections;
      if (open.size() > 32) {
        ::close(open.front());
        open.pop_front();
      }
    }
    for (const int fd : open) ::close(fd);
  });
  for (int i = 0; i < 5; ++i) {
    expect_served_within_a_second();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  flooding = false;
  flood.join();
  EXPECT_GT(flood_connections.load(), 50);
  EXPECT_EQ(server_->clients_accepted(), 5u);
  EXPECT_GE(server_->clients_refused(), 50u);
  // Each connection is refused once, even a wrong secret later pushed out while it waited.
  EXPECT_LE(server_->clients_refused(), std::uint64_t(flood_connections) + 150u);
  // One line for the first refusal, then at most one summary a second: not one line each.
  const int refusal_lines = log_.count("refused client") + log_.count("more client");
  EXPECT_LE(refusal_lines, 10) << log_.text();
  EXPECT_NE(log_.text().find("wrong secret x"), std::string::npos) << log_.text();
  // The data path works too, not only the handshake.
  RemoteOptions o;
  o.server = server_->address();
  o.secret = kSecret;
  o.timeout_s = 2;
  RemoteSource source(*catalog_, o);
  std::vector<std::byte> bytes(4096);
  source.read(1, 0, bytes);
  EXPECT_FALSE(first_mismatch(catalog_->object(1), 0, bytes).has_value());
}

TEST_F(MemdControl, ASilentConnectionIsClosedAfterTheHandshakeTimeout) {
  ControlServerOptions control;
  control.handshake_timeout_s = 0.3;
  start(control);
  const int idle = open_raw();
  const int partial = open_raw();
  send_bytes(partial, hello_frame(kSecret).substr(0, 20));
  EXPECT_TRUE(closed_within(idle, 5));
  EXPECT_TRUE(closed_within(partial, 5));
  EXPECT_EQ(server_->clients_refused(), 2u);
  EXPECT_NE(log_.text().find("no hello within 0.3 s"), std::string::npos) << log_.text();
}

TEST_F(MemdControl, AnOversizedOrForeignHelloIsClosedAtOnce) {
  start();
  const int oversized = open_raw();
  send_bytes(oversized, std::string("\xff\xff\xff\xff", 4));
  EXPECT_TRUE(closed_within(oversized, 1));
  const int foreign = open_raw();
  send_bytes(foreign, std::string("\x08\x00\x00\x00", 4) + "GET / HT");
  EXPECT_TRUE(closed_within(foreign, 1));
  EXPECT_EQ(server_->clients_refused(), 2u);
  EXPECT_EQ(server_->clients_accepted(), 0u);
}

TEST_F(MemdControl, MoreHandshakesThanItKeepsPushOutTheOldest) {
  ControlServerOptions control;
  control.max_handshakes = 8;
  start(control);
  std::vector<int> idle;
  for (int i = 0; i < 20; ++i) {
    idle.push_back(open_raw());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // accepted in this order
  }
  for (int i = 0; i < 12; ++i) EXPECT_TRUE(closed_within(idle[i], 2)) << "connection " << i;
  for (int i = 12; i < 20; ++i) EXPECT_FALSE(closed_within(idle[i], 0.05)) << "connection " << i;
  expect_served_within_a_second();
  EXPECT_NE(log_.text().find("pushed out"), std::string::npos) << log_.text();
}

TEST_F(MemdControl, WrongSecretsFromOneAddressAreAnsweredLaterAndLater) {
  ControlServerOptions control;
  control.backoff_first_s = 0.02;
  start(control);
  std::vector<double> waits;
  for (int i = 0; i < 6; ++i) {
    const auto begin = Clock::now();
    EXPECT_THROW(ControlClient(server_->address(), "a-wrong-secret-of-enough-length", 5.0), TransportError);
    waits.push_back(seconds_since(begin));
  }
  // 20 ms, 40, 80, ..., 640 ms: lower bounds only (a loaded machine can only be slower).
  EXPECT_GE(waits[5], 0.64);
  EXPECT_GE(waits[5], 4 * waits[0]);
  // The right secret from the same address is not slowed by the guesser.
  expect_served_within_a_second();
  EXPECT_EQ(server_->clients_refused(), 6u);
}

TEST_F(MemdControl, RefusesClientsBeyondItsLimitWithTheReason) {
  ControlServerOptions control;
  control.max_clients = 2;
  start(control);
  ControlClient a(server_->address(), kSecret, 2), b(server_->address(), kSecret, 2);
  try {
    ControlClient c(server_->address(), kSecret, 2);
    FAIL() << "a third client was accepted";
  } catch (const TransportError& e) {
    EXPECT_NE(std::string(e.what()).find("at most 2 clients"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server_->clients_connected(), 2u);
}

TEST(ControlProtocol, HelloFramesAreBoundedAndChecked) {
  const std::string right = hello_frame(kSecret);
  EXPECT_EQ(hello_bytes_missing(""), std::optional<std::size_t>(4));
  EXPECT_EQ(hello_bytes_missing(right.substr(0, 10)), std::optional<std::size_t>(right.size() - 10));
  EXPECT_EQ(hello_bytes_missing(right), std::optional<std::size_t>(0));
  EXPECT_EQ(hello_bytes_missing(std::string("\x01\x10\x00\x00", 4)), std::nullopt);  // 4097 bytes announced
  std::string why;
  EXPECT_EQ(check_hello(right, kSecret, why), Hello::Right);
  EXPECT_EQ(check_hello(hello_frame("x" + kSecret.substr(1)), kSecret, why), Hello::WrongSecret);
  EXPECT_EQ(check_hello(right + "x", kSecret, why), Hello::Broken);  // longer than announced
  EXPECT_EQ(check_hello(right.substr(0, right.size() - 1), kSecret, why), Hello::Broken);
  std::string foreign = right;
  foreign[4] = 'X';
  EXPECT_EQ(check_hello(foreign, kSecret, why), Hello::Broken);
  EXPECT_EQ(why, "not an rmai client");
  // A refusal round-trips with its reason; an unknown answer is malformed.
  const std::string refusal = refusal_frame("refused: because");
  const Answer answer = parse_answer(refusal.substr(4));
  EXPECT_TRUE(answer.refused);
  EXPECT_EQ(answer.reason, "refused: because");
  EXPECT_THROW(parse_answer(std::string("\x07", 1)), std::runtime_error);
  EXPECT_THROW(parse_answer(""), std::runtime_error);
}

}  // namespace
}  // namespace rmai::emul
