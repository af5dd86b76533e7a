#pragma once
// Child processes: started with an argv (no shell), waited for by exit status.
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace rmai::posix {

struct SpawnOptions {
  bool search_path = true;                    // argv[0] looked up in PATH (execvp), else a path (execv)
  std::optional<std::filesystem::path> output;  // the child's stdout and stderr into this file (truncated)
  int output_fd = -1;                         // the child's stdout and stderr onto this descriptor (a pipe)
  bool null_stdin = false;                    // the child's stdin from /dev/null
  // PR_SET_PDEATHSIG: SIGTERM when this process ends, however it ends (SIGKILL too), so that no
  // child keeps running, and writing, after its parent. Linux ties it to the calling thread: spawn
  // from a thread that lives as long as the child (every caller spawns from its main thread).
  bool die_with_parent = true;
  int stderr_fd = -1;                         // the child's stderr onto this descriptor
  std::vector<int> inherit_fds;               // close-on-exec descriptors the child keeps open
  bool clear_signal_mask = false;             // the child starts with no signal blocked
  int netns_fd = -1;                          // the child enters this network namespace (setns) before exec
};

// Starts argv[0] with `args` (stdout flushed first, so that the child's output follows ours).
// Throws std::system_error when fork fails; a child that cannot exec exits with 127.
pid_t spawn(const std::vector<std::string>& args, const SpawnOptions& options = {});

// Waits for a child: its exit code, 128 + the signal if one killed it.
int wait_exit(pid_t pid);

}  // namespace rmai::posix
