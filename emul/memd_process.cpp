#include "emul/memd_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "config/errors.hpp"
#include "posix/deadline.hpp"
#include "posix/errors.hpp"
#include "posix/process.hpp"

namespace rmai::emul {
namespace {

using Clock = std::chrono::steady_clock;

// How often stop() looks whether the child has exited while it waits.
constexpr auto kReapPoll = std::chrono::milliseconds(5);
// Secret size: 32 random bytes (256 bits), written as hex.
constexpr std::size_t kSecretBytes = 32;

using posix::throw_errno;

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}

}  // namespace

std::filesystem::path self_executable() { return std::filesystem::read_symlink("/proc/self/exe"); }

namespace {

// 32 random bytes from getrandom as 64 hex digits and a newline.
std::string fresh_secret() {
  unsigned char random[kSecretBytes];
  for (std::size_t got = 0; got < sizeof random;) {
    const ssize_t n = ::getrandom(random + got, sizeof random - got, 0);
    if (n < 0 && errno != EINTR) throw_errno("getrandom");
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  static const char digits[] = "0123456789abcdef";
  std::string text;
  for (const unsigned char b : random) {
    text.push_back(digits[b >> 4]);
    text.push_back(digits[b & 15]);
  }
  return text + "\n";
}

void write_secret(int fd, const std::string& where) {
  const std::string text = fresh_secret();
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) throw_errno("write " + where);
}

}  // namespace

std::filesystem::path write_secret_file(const std::filesystem::path& dir) {
  std::string path = (dir / "memd-secret-XXXXXX").string();
  const int fd = ::mkstemp(path.data());  // creates it 0600, exclusively
  if (fd < 0) throw_errno("cannot create a secret file in " + dir.string());
  try {
    if (::fchmod(fd, S_IRUSR | S_IWUSR) != 0) throw_errno("fchmod " + path);
    write_secret(fd, path);
  } catch (...) {
    ::close(fd);
    ::unlink(path.c_str());
    throw;
  }
  ::close(fd);
  return path;
}

int secret_memfd() {
  const int fd = ::memfd_create("rmai-memd-secret", MFD_CLOEXEC);
  if (fd < 0) throw_errno("memfd_create for the memd secret");
  try {
    write_secret(fd, "the memd secret");
  } catch (...) {
    ::close(fd);
    throw;
  }
  return fd;
}

std::filesystem::path secret_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

MemdProcess::MemdProcess(MemdProcessOptions options) : options_(std::move(options)) {
  const std::filesystem::path binary = options_.binary.empty() ? self_executable() : options_.binary;
  stderr_fd_ = ::memfd_create("rmai-memd-stderr", MFD_CLOEXEC);
  if (stderr_fd_ < 0) throw_errno("memfd_create");
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) {
    ::close(stderr_fd_);
    throw_errno("pipe2");
  }
  std::vector<std::string> args{binary.string(), "memd", options_.experiment.string()};
  for (const auto& s : options_.sets) {
    args.push_back("--set");
    args.push_back(s);
  }
  // An inherited descriptor keeps its number, so the child reads the secret at the same path.
  const std::string secret = options_.secret_fd >= 0 ? secret_path(options_.secret_fd).string() : options_.secret_file.string();
  args.insert(args.end(), {"--listen", options_.listen, "--secret-file", secret, "--ready-fd", std::to_string(ready[1])});
  posix::SpawnOptions spawn;
  // Like every child it dies with its parent (die_with_parent): a server nobody stops must not
  // outlive rmai run.
  spawn.search_path = false;
  spawn.stderr_fd = stderr_fd_;
  spawn.inherit_fds = {ready[1]};  // the descriptors that survive exec
  if (options_.secret_fd >= 0) spawn.inherit_fds.push_back(options_.secret_fd);
  spawn.clear_signal_mask = true;
  spawn.netns_fd = options_.netns_fd;
  try {
    pid_ = posix::spawn(args, spawn);
  } catch (...) {
    ::close(ready[0]);
    ::close(ready[1]);
    ::close(stderr_fd_);
    throw;
  }
  ::close(ready[1]);

  // Wait for "HOST:PORT\n" on the pipe, or its EOF when the child dies first.
  std::string line;
  const auto deadline = posix::deadline_after(options_.ready_timeout_s);
  bool eof = false;
  while (line.find('\n') == std::string::npos && !eof) {
    const int left = posix::ms_left(deadline);
    if (left <= 0) break;
    pollfd p{ready[0], POLLIN, 0};
    const int rc = ::poll(&p, 1, left);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) break;
    char buffer[256];
    const ssize_t n = ::read(ready[0], buffer, sizeof buffer);
    if (n > 0)
      line.append(buffer, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR)
      eof = true;
  }
  ::close(ready[0]);
  if (const auto newline = line.find('\n'); newline != std::string::npos) {
    address_ = line.substr(0, newline);
    return;
  }
  // Not serving: report why with the child's own words.
  int status = 0;
  std::string what;
  if (eof) {
    status = stop();  // reaps a child that exited; one that closed the pipe but lives on is stopped
    what = "rmai memd " + describe_status(status) + " before serving";
  } else {
    what = "rmai memd did not serve within " + std::to_string(options_.ready_timeout_s) + " s";
    stop();
  }
  const std::string err = log();
  ::close(stderr_fd_);
  stderr_fd_ = -1;
  if (eof && WIFEXITED(status) && WEXITSTATUS(status) == 2) throw InputError("rmai memd", err.empty() ? what : err);
  throw std::runtime_error(what + (err.empty() ? "" : ": " + err));
}

MemdProcess::~MemdProcess() {
  stop();
  if (stderr_fd_ >= 0) ::close(stderr_fd_);
}

std::string MemdProcess::log() const {
  if (stderr_fd_ < 0) return "";
  // pread: the child writes through the same open file, so this side must not move its offset.
  std::string out;
  char buffer[4096];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(stderr_fd_, buffer, sizeof buffer, at);
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
    at += n;
  }
  return out;
}

int MemdProcess::stop() {
  if (pid_ <= 0) return 0;
  ::kill(pid_, SIGTERM);
  int status = 0;
  const auto deadline = posix::deadline_after(options_.stop_timeout_s);
  for (;;) {
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_ || (done < 0 && errno != EINTR)) break;
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(kReapPoll);
  }
  pid_ = 0;
  return status;
}

}  // namespace rmai::emul
