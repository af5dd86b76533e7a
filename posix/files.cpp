#include "posix/files.hpp"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <streambuf>

#include "posix/errors.hpp"

namespace rmai::posix {
namespace fs = std::filesystem;

namespace {

std::runtime_error failure(const std::string& what, const fs::path& file) {
  return std::runtime_error(what + " " + file.string() + ": " + std::strerror(errno));
}

// --- the temporaries a signal removes -------------------------------------------------------------

// Fixed buffers: a signal handler can neither allocate nor follow a pointer into memory that another
// thread may be freeing. A slot's state: 0 free, 1 being filled, 2 listed.
struct Slot {
  std::atomic<int> state{0};
  pid_t owner = 0;  // a child forked before its exec inherits the slots: only their owner removes them
  char path[PATH_MAX] = {};
};
Slot slots[64];

extern "C" void remove_temporaries_and_die(int signal) {
  const pid_t self = ::getpid();
  for (auto& slot : slots)
    if (slot.state.load() == 2 && slot.owner == self) ::unlink(slot.path);
  // SA_RESETHAND restored the default action, and the signal is blocked in its handler: the process
  // dies of it on return, as it would have without this handler.
  ::raise(signal);
}

// The slot now holding `temporary` (absolute), or -1 when all are taken (then only the guard removes it).
int list(const fs::path& temporary) {
  const std::string& text = temporary.native();
  if (text.size() >= PATH_MAX) return -1;
  install_temporary_handlers();
  for (int i = 0; i < static_cast<int>(std::size(slots)); ++i) {
    int free = 0;
    if (!slots[i].state.compare_exchange_strong(free, 1)) continue;
    slots[i].owner = ::getpid();
    std::memcpy(slots[i].path, text.c_str(), text.size() + 1);
    slots[i].state.store(2);
    return i;
  }
  return -1;
}

void unlist(int slot) {
  if (slot >= 0) slots[slot].state.store(0);
}

// --- writing --------------------------------------------------------------------------------------

// An output buffer onto a descriptor that keeps the errno of its first failed write: a stream's
// state alone says only that something failed, and errno is long overwritten when it is checked.
class FileBuffer : public std::streambuf {
 public:
  explicit FileBuffer(int fd) : fd_(fd), buffer_(1 << 16) { setp(buffer_.data(), buffer_.data() + buffer_.size()); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type c) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  bool drain() {
    for (const char* p = pbase(); p < pptr() && error_ == 0;) {
      const ssize_t n = ::write(fd_, p, static_cast<std::size_t>(pptr() - p));
      if (n > 0)
        p += n;
      else if (n < 0 && errno != EINTR)
        error_ = errno;
    }
    setp(buffer_.data(), buffer_.data() + buffer_.size());  // after a failure, the rest is dropped
    return error_ == 0;
  }

  int fd_;
  int error_ = 0;
  std::vector<char> buffer_;
};

std::function<void(std::ostream&)> text_writer(const std::string& text) {
  return [&text](std::ostream& out) { out << text; };
}

}  // namespace

// For the signals that end a process from outside (a user, a parent gone, a pipe's reader gone, a
// resource limit), unless someone else handles or ignores them.
void install_temporary_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (const int signal : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGXCPU, SIGXFSZ}) {
      struct sigaction old {};
      if (::sigaction(signal, nullptr, &old) != 0 || (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
        continue;
      struct sigaction action {};
      action.sa_handler = remove_temporaries_and_die;
      action.sa_flags = SA_RESETHAND;
      sigemptyset(&action.sa_mask);
      ::sigaction(signal, &action, nullptr);
    }
  });
}

TemporaryFile::TemporaryFile(fs::path path) : path_(std::move(path)), temporary_(path_) {
  temporary_ += ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  slot_ = list(fs::absolute(temporary_, ec));  // listed before it exists: no moment unlisted
}

TemporaryFile::~TemporaryFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temporary_.c_str());
  unlist(slot_);  // after the unlink: a signal in between only removes it a second time
}

void TemporaryFile::write(const std::function<void(std::ostream&)>& write) {
  const int fd = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw failure("cannot create", path_);
  try {
    FileBuffer buffer(fd);
    std::ostream out(&buffer);
    write(out);
    out.flush();
    if (buffer.error() != 0) {
      errno = buffer.error();
      throw failure("cannot write", path_);
    }
    if (!out) throw std::runtime_error("cannot write " + path_.string() + ": the writer failed its stream");
    // On disk before the rename makes it visible: a crash leaves the old file or the new.
    if (::fsync(fd) != 0) throw failure("cannot write", path_);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw failure("cannot write", path_);  // a write the kernel could not complete
}

void TemporaryFile::append(std::string_view text) {
  if (finished_) throw std::logic_error("appended to " + path_.string() + " after it was finished");
  if (fd_ < 0) {
    fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd_ < 0) throw failure("cannot create", path_);
  }
  while (!text.empty()) {
    const ssize_t n = ::write(fd_, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw failure("cannot write", path_);
    text.remove_prefix(std::size_t(n));
  }
}

void TemporaryFile::finish() {
  if (finished_) return;  // a second finish would open it again, truncated
  if (fd_ < 0) append({});  // nothing appended: an empty file
  finished_ = true;
  const int fd = std::exchange(fd_, -1);
  if (::fsync(fd) != 0) {
    ::close(fd);
    throw failure("cannot write", path_);
  }
  if (::close(fd) != 0) throw failure("cannot write", path_);
}

void TemporaryFile::commit() {
  if (fd_ >= 0) finish();
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) throw failure("cannot rename into place", path_);
  committed_ = true;
}

void write_file_atomic(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  TemporaryFile file(path);
  file.write(write);
  file.commit();
}

void write_file_atomic(const fs::path& path, const std::string& text) { write_file_atomic(path, text_writer(text)); }

void write_files_atomic(const std::vector<std::pair<fs::path, std::string>>& files,
                        const std::vector<TemporaryFile*>& written) {
  for (auto* temporary : written) temporary->finish();
  std::vector<std::unique_ptr<TemporaryFile>> temporaries;  // the guards remove what a failure leaves
  for (const auto& file : files) {
    temporaries.push_back(std::make_unique<TemporaryFile>(file.first));
    temporaries.back()->write(text_writer(file.second));
  }
  for (auto* temporary : written) temporary->commit();
  for (const auto& temporary : temporaries) temporary->commit();
}

CreatedDirectories::CreatedDirectories(const fs::path& path) {
  std::error_code ec;
  fs::path deepest = fs::absolute(path).lexically_normal();
  if (!deepest.has_filename()) deepest = deepest.parent_path();  // "out/"
  for (fs::path p = deepest; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    created_.push_back(p);
    if (p == p.parent_path()) break;
  }
  fs::create_directories(path);
}

CreatedDirectories::~CreatedDirectories() {
  std::error_code ec;
  for (const auto& dir : created_)
    if (!fs::remove(dir, ec)) break;  // not empty (or gone): its parents are not empty either
}

namespace {

// The temporaries of `dir` (TemporaryFile's FILE.tmp.PID), `remove` deciding by the pid.
void remove_temporaries_if(const fs::path& dir, const std::function<bool(pid_t)>& remove) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const auto mark = name.rfind(".tmp.");
    if (mark != std::string::npos && mark + 5 < name.size() && name.size() - mark - 5 < 10 &&
        name.find_first_not_of("0123456789", mark + 5) == std::string::npos &&
        remove(static_cast<pid_t>(std::stol(name.substr(mark + 5)))))
      fs::remove(entry.path(), ec);
  }
}

}  // namespace

void remove_stale_temporaries(const fs::path& dir) {
  remove_temporaries_if(dir, [](pid_t) { return true; });
}

void remove_temporaries_of_dead_processes(const fs::path& dir) {
  remove_temporaries_if(dir, [](pid_t pid) { return pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH; });
}

// --- locks ----------------------------------------------------------------------------------------

std::optional<FileLock> FileLock::try_take(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) throw_errno("cannot open the lock file " + path.string());
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd);
    if (error == EWOULDBLOCK) return std::nullopt;
    errno = error;
    throw_errno("cannot lock " + path.string());
  }
  return FileLock(fd);
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock unless a child still holds the descriptor
}

void FileLock::record(pid_t pid) {
  const std::string text = std::to_string(pid) + "\n";
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, text.data(), text.size(), 0) < 0) {
  }  // informative only: a lock without a pid is still a lock
}

std::optional<pid_t> holder_of(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<pid_t> holder;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    char text[32] = {};
    holder = ::pread(fd, text, sizeof text - 1, 0) > 0 ? static_cast<pid_t>(std::atol(text)) : 0;
  }
  ::close(fd);  // and with it the shared lock this probe may have taken
  return holder;
}

// --- staged directories --------------------------------------------------------------------------

namespace {

constexpr const char* kStagingLock = ".lock";

fs::path target_of(const fs::path& target) {
  fs::path t = fs::absolute(target).lexically_normal();
  return t.has_filename() ? t : t.parent_path();  // "out/"
}

std::string staging_prefix(const fs::path& target) { return "." + target.filename().string() + ".partial-"; }

// Removes the staging directories of `target` whose writers are gone: their lock is free. One
// without a lock file is being created right now (mkdtemp, then the lock): left alone.
void remove_stale_staging(const fs::path& target) {
  std::error_code ec;
  const std::string prefix = staging_prefix(target);
  for (const auto& entry : fs::directory_iterator(target.parent_path(), ec)) {
    if (!entry.path().filename().string().starts_with(prefix) || !fs::exists(entry.path() / kStagingLock, ec)) continue;
    try {
      if (FileLock::try_take(entry.path() / kStagingLock)) fs::remove_all(entry.path(), ec);
    } catch (const std::system_error&) {  // another user's, say: not ours to remove
    }
  }
}

// A fresh staging directory of `target`, the stale ones removed first.
fs::path make_staging(const fs::path& target) {
  remove_stale_staging(target);
  std::string name = (target.parent_path() / (staging_prefix(target) + "XXXXXX")).string();
  if (!::mkdtemp(name.data())) throw_errno("cannot create a directory beside " + target.string());
  return name;
}

}  // namespace

StagedDirectory::StagedDirectory(const fs::path& target)
    : target_(target_of(target)),
      parents_(target_.parent_path()),
      staging_(make_staging(target_)),
      lock_(FileLock::try_take(staging_ / kStagingLock)) {
  if (!lock_) throw std::runtime_error(staging_.string() + " is locked by another process");
}

StagedDirectory::~StagedDirectory() {
  std::error_code ec;
  if (!committed_) fs::remove_all(staging_, ec);
}

void StagedDirectory::commit() {
  fs::create_directories(target_);
  // An entry the target has already goes aside into the staging directory first (a directory cannot
  // be renamed over one that is not empty): killed half-way, the target holds old and new entries,
  // none half-written, and what went aside goes with the staging directory.
  std::vector<fs::path> names;
  for (const auto& entry : fs::directory_iterator(staging_))
    if (entry.path().filename() != kStagingLock) names.push_back(entry.path().filename());
  for (const auto& name : names) {
    std::error_code ec;
    if (fs::exists(fs::symlink_status(target_ / name, ec))) fs::rename(target_ / name, staging_ / (".old" + name.string()));
    fs::rename(staging_ / name, target_ / name);
  }
  parents_.keep();
  committed_ = true;
  lock_.reset();
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

std::optional<std::int64_t> read_number(const fs::path& path) {
  std::ifstream in(path);
  std::int64_t value = 0;
  if (in >> value) return value;
  return std::nullopt;
}

}  // namespace rmai::posix
