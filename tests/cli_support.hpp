#pragma once
// Runs the rmai executable for end-to-end tests and captures its exit status and output.
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fcntl.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <string>
#include <vector>

namespace rmai::testing {

namespace fs = std::filesystem;

inline const fs::path kRmai = RMAI_BIN;
inline const fs::path kSourceDir = RMAI_SOURCE_DIR;
inline const fs::path kQuickstart = kSourceDir / "experiments" / "quickstart.yaml";

struct Result {
  int exit_code = -1;  // the exit status, or 128 + signal when killed
  bool signaled = false;
  long max_rss_kib = 0;  // the child's peak resident memory (its ru_maxrss)
  std::string out;
  std::string err;
};

// Replaces the forked child by rmai with `args`; `before_exec` (async-signal-safe calls only) may
// set limits or signal dispositions first.
[[noreturn]] inline void exec_rmai(const std::vector<std::string>& args, const std::function<void()>& before_exec) {
  std::vector<std::string> storage{kRmai.string()};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  if (before_exec) before_exec();
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

// Runs rmai with `args` (in `cwd` when given) and captures its exit status, stdout and stderr.
inline Result run(const std::vector<std::string>& args, const fs::path& cwd = {},
                  const std::function<void()>& before_exec = {}) {
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
    exec_rmai(args, before_exec);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  Result r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  char buffer[65536];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t got = ::read(fds[i].fd, buffer, sizeof buffer);
      if (got > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(got));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  r.max_rss_kib = usage.ru_maxrss;
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signaled = true;
    r.exit_code = 128 + WTERMSIG(status);
  }
  return r;
}

// Starts rmai with `args` without waiting, its stdout and stderr into `log`: its pid.
inline pid_t start(const std::vector<std::string>& args, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) ::_exit(126);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    exec_rmai(args, {});
  }
  return pid;
}

// The processes whose command line mentions `needle` (a test's own files). A zombie has no command
// line: it counts as gone.
inline std::vector<pid_t> processes_mentioning(const std::string& needle) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    // A process may exit between listing and reading: its read fails with ESRCH. Streaming the
    // buffer into a string turns that into an empty read (an iterator over it would throw).
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::ostringstream read;
    read << in.rdbuf();
    const std::string cmdline = read.str();
    if (cmdline.find(needle) != std::string::npos) out.push_back(std::stoi(name));
  }
  return out;
}

// Polls `done` every 20 ms for up to `seconds`; its last answer.
inline bool eventually(const std::function<bool()>& done, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return done();
}

// The files under `dir` whose name holds ".tmp" (a temporary left behind).
inline std::vector<fs::path> temporaries_under(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(dir, ec))
    if (entry.path().filename().string().find(".tmp") != std::string::npos) out.push_back(entry.path());
  return out;
}

// A fresh directory per test (named after it), removed afterwards, with a helper to write files.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name)
      if (c == '/') c = '_';
    dir_ = fs::temp_directory_path() / ("rmai_cli_test_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path write(const std::string& name, const std::string& content) {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  fs::path dir_;
};

}  // namespace rmai::testing
