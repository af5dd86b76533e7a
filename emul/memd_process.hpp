#pragma once
// memd as a child process: `rmai run --mode emul` starts its own server on loopback with the same
// experiment and --set list (so both build the same catalog) and a fresh secret, and stops it when
// done. Tests use it to kill a server under a client.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace rmai::emul {

struct MemdProcessOptions {
  std::filesystem::path binary;      // the rmai executable; empty: this process's own (/proc/self/exe)
  std::filesystem::path experiment;  // EXP.yaml
  std::vector<std::string> sets;     // key=value, passed as --set
  std::filesystem::path secret_file;  // or:
  int secret_fd = -1;  // a descriptor holding the secret (secret_memfd), inherited by the child
  std::string listen = "127.0.0.1:0";
  int netns_fd = -1;  // a network namespace (an open /run/netns/NAME) the server runs in; -1: this one
  double ready_timeout_s = 120;  // generating a few GB of objects takes a while on 2 cores
  double stop_timeout_s = 5;     // after SIGTERM, before SIGKILL
};

class MemdProcess {
 public:
  // Starts `rmai memd` and waits until it serves. Throws InputError (with the child's stderr) when it
  // exits with status 2 (bad input), std::runtime_error when it fails otherwise or is not ready in time.
  explicit MemdProcess(MemdProcessOptions options);
  ~MemdProcess();  // stop()
  MemdProcess(const MemdProcess&) = delete;
  MemdProcess& operator=(const MemdProcess&) = delete;

  const std::string& address() const { return address_; }  // HOST:PORT of its control socket
  pid_t pid() const { return pid_; }
  // What the child wrote on stderr so far (its serving line, clients, refusals).
  std::string log() const;
  // SIGTERM, wait up to stop_timeout_s, then SIGKILL. Returns the wait status (0 after a clean exit).
  // Idempotent; after it, pid() is 0.
  int stop();

 private:
  MemdProcessOptions options_;
  pid_t pid_ = 0;
  int stderr_fd_ = -1;  // memfd holding the child's stderr
  std::string address_;
};

// Path of the running executable.
std::filesystem::path self_executable();

// Writes a fresh secret (32 random bytes from getrandom, as 64 hex digits) to a new file in `dir`,
// readable by the owner only (0600), and returns its path (for a memd shared by several runs).
std::filesystem::path write_secret_file(const std::filesystem::path& dir);

// A fresh secret in an anonymous memory file (memfd, close-on-exec): nothing on disk, gone with the
// last process holding it, even after kill -9. Read it as secret_path(fd); the caller closes it.
int secret_memfd();
std::filesystem::path secret_path(int fd);

}  // namespace rmai::emul
