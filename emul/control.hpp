#pragma once
// The memory server's control plane: a plain TCP connection per client, beside the fabric. The client
// says hello with the shared secret; the server compares it in constant time and either refuses and
// closes, or answers with what the client needs for one-sided reads: its fabric address, the catalog
// it serves and, for each object, the remote address, length and key of its memory region. Nothing
// about memory is sent before the secret is verified.
//
// The connection then stays open, silent, for the whole session: the server never writes again, so
// the client reading EOF (or an error) on it means the server is gone. That is how a client learns
// of the server's death quickly, whatever the fabric does.
//
// Wire format: frames of a 4-byte little-endian length and a payload of little-endian integers,
// doubles (IEEE 754 bits) and length-prefixed strings.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "emul/objects.hpp"

namespace rmai::emul {

// What the server tells a client about one object.
struct ServedObject {
  std::uint32_t id = 0;
  std::uint64_t address = 0;  // remote address of byte 0 (fi_read's addr)
  std::uint64_t length = 0;
  std::uint64_t key = 0;      // remote key of the object's memory region
};

// The server's answer to a client whose secret was right.
struct Welcome {
  std::string provider;                      // tcp | shm | verbs
  std::vector<std::uint8_t> fabric_address;  // fi_getname of the server's endpoint
  CatalogSpec catalog;
  std::uint64_t object_bytes = 0;
  std::vector<ServedObject> objects;         // by id
};

// "host:port" or "[v6]:port" -> (host, port). Throws InputError naming `where`.
std::pair<std::string, std::uint16_t> parse_host_port(const std::string& text, const std::string& where);

// The secret in `file` (surrounding whitespace dropped). Throws InputError naming the file when it
// cannot be read, is empty, or is shorter than kMinSecretChars.
inline constexpr std::size_t kMinSecretChars = 16;
std::string read_secret_file(const std::filesystem::path& file);
inline constexpr std::size_t kMaxSecretBytes = 4096;  // what read_secret_file reads at most

// Compares in time that depends only on the lengths, not on where the first difference is.
bool secrets_equal(std::string_view a, std::string_view b);

// Throws InputError naming the first field in which what the server serves differs from `mine`.
void check_catalog(const Welcome& served, const Catalog& mine, const std::string& server);

// A listening TCP socket (server side).
class ControlListener {
 public:
  ControlListener(const std::string& host, std::uint16_t port);
  ~ControlListener();
  ControlListener(const ControlListener&) = delete;
  ControlListener& operator=(const ControlListener&) = delete;
  int fd() const { return fd_; }
  const std::string& host() const { return host_; }
  std::uint16_t port() const { return port_; }  // the port bound (the one picked when 0 was asked)

 private:
  int fd_ = -1;
  std::string host_;
  std::uint16_t port_ = 0;
};

// The wire format's pieces the server's event loop (control_server.hpp) works with: it reads hellos
// and writes answers without blocking, so it assembles frames itself.
enum class Hello { Right, WrongSecret, Broken };
inline constexpr std::uint32_t kMaxHello = 4096;  // a hello's payload at most: a few dozen bytes are enough
// How many more bytes the hello frame begun by `received` needs (0: complete), or nullopt when its
// header announces more than kMaxHello.
std::optional<std::size_t> hello_bytes_missing(std::string_view received);
// Checks a whole hello frame (header and payload), comparing the secret in constant time. `why`
// says what was wrong otherwise.
Hello check_hello(std::string_view frame, const std::string& secret, std::string& why);
std::string welcome_frame(const Welcome& welcome);
std::string refusal_frame(std::string_view reason);
// The server's answer as the client decodes it from the frame's payload: a welcome, or a refusal
// and its reason. Throws std::runtime_error when it is malformed.
struct Answer {
  bool refused = false;
  std::string reason;  // when refused
  Welcome welcome;     // otherwise
};
Answer parse_answer(std::string_view payload);

// "ip:port" of the peer of a connected socket (for logs).
std::string peer_name(int fd);

// The client's side: connects, says hello and receives the welcome. Throws TransportError (source.hpp)
// when the server cannot be reached, refuses the secret or answers nonsense.
class ControlClient {
 public:
  ControlClient(const std::string& server, const std::string& secret, double timeout_s);
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  const Welcome& welcome() const { return welcome_; }
  const std::string& server() const { return server_; }
  // The local IP this connection uses to reach the server (the fabric binds there too).
  const std::string& local_ip() const { return local_ip_; }
  // True once the server closed the connection or it failed: the server is gone. Does not block.
  bool server_gone() const;
  // Waits up to `timeout_s` for the connection to close; true if it did.
  bool wait_gone(double timeout_s) const;

 private:
  std::string server_;
  std::string local_ip_;
  int fd_ = -1;
  Welcome welcome_;
};

}  // namespace rmai::emul
