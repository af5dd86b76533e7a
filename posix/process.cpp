#include "posix/process.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <iostream>

#include "posix/errors.hpp"

namespace rmai::posix {

pid_t spawn(const std::vector<std::string>& args, const SpawnOptions& options) {
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string output = options.output ? options.output->string() : "";
  const pid_t parent = ::getpid();
  std::cout.flush();
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid > 0) return pid;
  if (options.die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    // The parent may have ended between fork and prctl, and then no signal comes: we were
    // reparented, so getppid() differs.
    if (::getppid() != parent) ::_exit(1);
  }
  if (options.null_stdin) {
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // dup2 clears close-on-exec on the copy
    if (null < 0) ::_exit(127);
    ::dup2(null, STDIN_FILENO);
  }
  if (options.output) {
    const int fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) ::_exit(127);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
  }
  if (options.output_fd >= 0) {
    ::dup2(options.output_fd, STDOUT_FILENO);
    ::dup2(options.output_fd, STDERR_FILENO);
  }
  if (options.stderr_fd >= 0) ::dup2(options.stderr_fd, STDERR_FILENO);
  for (const int fd : options.inherit_fds) ::fcntl(fd, F_SETFD, 0);
  if (options.clear_signal_mask) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
  }
  if (options.netns_fd >= 0 && ::setns(options.netns_fd, CLONE_NEWNET) != 0) {
    std::perror("setns");
    ::_exit(127);
  }
  if (options.search_path)
    ::execvp(argv[0], argv.data());
  else
    ::execv(argv[0], argv.data());
  std::perror(argv[0]);
  ::_exit(127);
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw_errno("waitpid");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace rmai::posix
