#pragma once
// Files written so that a reader never sees half of one, locks on files, and small files read as
// numbers.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rmai::posix {

// A file written under a temporary name beside `path` (`path.tmp.PID`: named with the pid, since
// Slurm tasks of one sweep may write the same file at once) and renamed into place by commit().
// The temporary never outlives a failure: the guard removes it when it goes uncommitted (an
// exception, an early return), and the signals that end a process from outside (SIGHUP, SIGINT,
// SIGQUIT, SIGTERM, SIGPIPE, SIGXCPU, SIGXFSZ), when left at their default action, remove every
// live temporary of this process before it dies of the signal. Only SIGKILL or a crash can leave
// one behind (see remove_stale_temporaries).
class TemporaryFile {
 public:
  explicit TemporaryFile(std::filesystem::path path);
  ~TemporaryFile();
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  // Writes the temporary through `write` and fsyncs it, so that a crash after the rename leaves the
  // old file or the new one. Throws std::runtime_error "cannot write PATH: strerror" (the errno of
  // the system call that failed), or what `write` threw.
  void write(const std::function<void(std::ostream&)>& write);
  // Or written piece by piece as a run goes: append() creates the temporary on first use and
  // writes `text` through; finish() fsyncs and closes it (commit() calls it; once: a second call
  // does nothing, an append after it is a logic_error). Same errors as write().
  void append(std::string_view text);
  void finish();
  // Renames the temporary into place; throws std::runtime_error naming `path` and strerror.
  void commit();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_, temporary_;
  int fd_ = -1;  // open while append() writes
  bool finished_ = false;  // by finish(): complete, closed
  int slot_ = -1;  // in the list the signal handler removes (-1: not listed)
  bool committed_ = false;
};

// Writes `path` through a TemporaryFile: on failure `path` is untouched, no temporary is left and
// the error (std::runtime_error) names the file and strerror.
void write_file_atomic(const std::filesystem::path& path, const std::string& text);
void write_file_atomic(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);

// Several files: all temporaries written first, then renamed in order, so that a write failure
// leaves none of them changed (results whose last file marks them complete).
// `written`: temporaries already written piece by piece (TemporaryFile::append), finished and
// renamed first.
void write_files_atomic(const std::vector<std::pair<std::filesystem::path, std::string>>& files,
                        const std::vector<TemporaryFile*>& written = {});

// Creates `path` and its missing parents; the ones it created are removed again when the guard goes
// unkept (an exception, an early return), as far as they are empty, so that a run refused or failed
// after it made its results directory leaves no empty directory behind.
class CreatedDirectories {
 public:
  explicit CreatedDirectories(const std::filesystem::path& path);
  ~CreatedDirectories();
  CreatedDirectories(const CreatedDirectories&) = delete;
  CreatedDirectories& operator=(const CreatedDirectories&) = delete;
  void keep() { created_.clear(); }

 private:
  std::vector<std::filesystem::path> created_;  // deepest first
};

// Removes the temporaries TemporaryFile left in `dir` (killed by SIGKILL). Only for a directory
// whose writers are known to be gone, e.g. under its FileLock.
void remove_stale_temporaries(const std::filesystem::path& dir);
// Only those whose process is gone on this machine (a run killed with SIGKILL): for a directory one
// writer at a time writes, from this machine (a run's --out).
void remove_temporaries_of_dead_processes(const std::filesystem::path& dir);

// Installs, once, the handlers that remove this process's temporaries on SIGINT, SIGTERM and the
// other signals that end a process from outside (where their action is still the default), as the
// first temporary does. A handler installed later that restores the previous action and raises the
// signal again chains to them.
void install_temporary_handlers();

// An exclusive flock(2) on a lock file, which records the pid of the process it stands for. The
// lock belongs to the open file: a child that inherits the descriptor (SpawnOptions::inherit_fds)
// holds it too, so it is free only once this object and every such child are gone, however they
// end (SIGKILL included). The file itself stays: removing it would let two processes lock two files.
class FileLock {
 public:
  // Takes the lock on `path` (created if missing) without waiting; nothing when another process
  // holds it. Throws std::system_error naming `path` when the file cannot be opened or locked.
  static std::optional<FileLock> try_take(const std::filesystem::path& path);
  FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();

  int fd() const { return fd_; }
  // Records `pid` as the holder, which holder_of() reports (best effort: a full disk leaves it empty).
  void record(pid_t pid);

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

// Whether the lock file `path` is held, and by whom: nothing when it is free or does not exist, else
// the pid recorded in it (0 if none is).
std::optional<pid_t> holder_of(const std::filesystem::path& path);

// A results directory written in full before any of it shows: its writer writes into path(), a
// sibling `.NAME.partial-XXXXXX` of `target` (the same file system, so that commit() renames), and
// commit() moves every entry of it into `target`, replacing entries of the same name and leaving
// the others. Dropped uncommitted (an exception, an early return), it is removed, and so are the
// parents of `target` it created. Locked while its writer lives (`.lock` inside it): one that a
// killed writer left (SIGKILL, or a signal, which removes temporary files but not this) is removed
// by the next StagedDirectory of the same target.
class StagedDirectory {
 public:
  explicit StagedDirectory(const std::filesystem::path& target);
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;
  const std::filesystem::path& path() const { return staging_; }
  // Throws std::filesystem::filesystem_error naming the entry that could not be moved.
  void commit();

 private:
  std::filesystem::path target_;
  CreatedDirectories parents_;  // of target_, for the staging directory beside it
  std::filesystem::path staging_;
  std::optional<FileLock> lock_;
  bool committed_ = false;
};

// The number a /proc or /sys file holds, or nothing when it cannot be read.
std::optional<std::int64_t> read_number(const std::filesystem::path& path);

}  // namespace rmai::posix
