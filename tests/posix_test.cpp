// The POSIX helpers (posix/): atomic writes leave no temporary behind (failure, exception, signal),
// errors carry the strerror of the call that failed, file locks are exclusive and inherited, child
// processes report their exit status and die with their parent.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "posix/deadline.hpp"
#include "posix/errors.hpp"
#include "posix/files.hpp"
#include "posix/process.hpp"

namespace {
namespace fs = std::filesystem;
using namespace rmai::posix;

class PosixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rmai_posix_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string read(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::size_t entries() { return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir_), {})); }
  fs::path dir_;
};

// Runs `body` in a forked child, which ends by _exit(0) after it unless `body` ends it first (by a
// signal or its own _exit): the child's wait status.
int in_child(const std::function<void()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// Whether process `pid` is gone: no such process, or a zombie nobody reaped yet.
bool gone(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const auto name_end = stat.rfind(')');
  return stat.empty() || (name_end != std::string::npos && stat.substr(name_end + 2, 1) == "Z");
}

// Polls `done` for up to `seconds`.
bool eventually(const std::function<bool()>& done, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return done();
}

TEST_F(PosixTest, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  write_file_atomic(dir_ / "a.txt", "old");
  write_file_atomic(dir_ / "a.txt", "new\n");
  EXPECT_EQ(read(dir_ / "a.txt"), "new\n");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(PosixTest, AtomicWriteIntoAMissingDirectoryNamesTheErrorAndLeavesNothing) {
  try {
    write_file_atomic(dir_ / "missing" / "a.txt", "x");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(std::strerror(ENOENT)), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("a.txt"), std::string::npos) << e.what();
  }
  EXPECT_EQ(entries(), 0u);
}

TEST_F(PosixTest, AFailingWriterLeavesTheOldFileAndNoTemporary) {
  write_file_atomic(dir_ / "a.txt", "old");
  EXPECT_THROW(write_file_atomic(dir_ / "a.txt",
                                 [](std::ostream& out) {
                                   out << "half";
                                   throw std::runtime_error("writer failed");
                                 }),
               std::runtime_error);
  EXPECT_EQ(read(dir_ / "a.txt"), "old");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(PosixTest, AFileWrittenPieceByPieceIsFinishedOnceAndTakesNothingAfter) {
  TemporaryFile file(dir_ / "rows.csv");
  file.append("a,");
  file.append("b\n");
  file.finish();
  file.finish();  // once finished, a second call must not open it again (truncated)
  EXPECT_THROW(file.append("c\n"), std::logic_error);
  file.commit();
  EXPECT_EQ(read(dir_ / "rows.csv"), "a,b\n");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(PosixTest, OnlyTheTemporariesOfDeadProcessesAreRemoved) {
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const pid_t alive = spawn({"sleep", "60"});
  for (const pid_t pid : {dead, alive, ::getpid()})
    write_file_atomic(dir_ / ("switches.csv.tmp." + std::to_string(pid)), "rows");
  write_file_atomic(dir_ / "switches.csv.tmp.notapid", "kept");
  remove_temporaries_of_dead_processes(dir_);
  EXPECT_FALSE(fs::exists(dir_ / ("switches.csv.tmp." + std::to_string(dead))));
  EXPECT_TRUE(fs::exists(dir_ / ("switches.csv.tmp." + std::to_string(alive))));
  EXPECT_TRUE(fs::exists(dir_ / ("switches.csv.tmp." + std::to_string(::getpid()))));
  EXPECT_TRUE(fs::exists(dir_ / "switches.csv.tmp.notapid"));
  ::kill(alive, SIGKILL);
  wait_exit(alive);
}

TEST_F(PosixTest, SeveralFilesChangeTogetherOrNotAtAll) {
  write_file_atomic(dir_ / "first", "old");
  EXPECT_THROW(write_files_atomic({{dir_ / "first", "new"}, {dir_ / "missing" / "second", "x"}}), std::runtime_error);
  EXPECT_EQ(read(dir_ / "first"), "old");
  EXPECT_EQ(entries(), 1u);
  write_files_atomic({{dir_ / "first", "new"}, {dir_ / "second", "2"}});
  EXPECT_EQ(read(dir_ / "first"), "new");
  EXPECT_EQ(read(dir_ / "second"), "2");
  EXPECT_EQ(entries(), 2u);
}

TEST_F(PosixTest, AFailingRenameLeavesNoTemporaryOfTheFilesAfterIt) {
  fs::create_directories(dir_ / "b" / "full");  // a non-empty directory cannot be replaced by a file
  try {
    write_files_atomic({{dir_ / "a", "1"}, {dir_ / "b", "2"}, {dir_ / "c", "3"}});
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot rename into place " + (dir_ / "b").string() + ": "), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(entries(), 2u);  // a (renamed first) and the directory b: no temporary of b or c
  EXPECT_FALSE(fs::exists(dir_ / "c"));
}

TEST_F(PosixTest, WriteErrorsCarryTheErrnoOfTheWriteThatFailed) {
  // Files limited to 4 KiB with SIGXFSZ ignored: a longer write fails with EFBIG. In one go, and
  // from a writer that streams many small pieces (whose other calls would have overwritten errno).
  const auto expect_efbig = [&](const std::function<void(std::ostream&)>& writer) {
    const int status = in_child([&] {
      ::signal(SIGXFSZ, SIG_IGN);
      const rlimit limit{4096, 4096};
      ::setrlimit(RLIMIT_FSIZE, &limit);
      try {
        write_file_atomic(dir_ / "big", writer);
        std::fprintf(stderr, "no error\n");
        ::_exit(10);
      } catch (const std::runtime_error& e) {
        const std::string expected = "cannot write " + (dir_ / "big").string() + ": " + std::strerror(EFBIG);
        if (e.what() != expected) std::fprintf(stderr, "got \"%s\", expected \"%s\"\n", e.what(), expected.c_str());
        ::_exit(e.what() == expected ? 0 : 11);
      }
    });
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_EQ(entries(), 0u);
  };
  expect_efbig([](std::ostream& out) { out << std::string(100000, 'x'); });
  expect_efbig([](std::ostream& out) {
    for (int i = 0; i < 100000; ++i) {
      out << i << '\n';
      errno = ENOENT;  // what an unrelated failing call in the writer leaves
    }
  });
}

TEST_F(PosixTest, ASignalRemovesTheTemporaryBeingWrittenAndStillEndsTheProcess) {
  const auto killed_mid_write = [&](int signal) {
    return in_child([&] {
      write_file_atomic(dir_ / "a.txt", [&](std::ostream& out) {
        out << "half";
        out.flush();
        ::raise(signal);
      });
    });
  };
  for (const int signal : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) {
    const int status = killed_mid_write(signal);
    ASSERT_TRUE(WIFSIGNALED(status)) << strsignal(signal) << ": " << status;
    EXPECT_EQ(WTERMSIG(status), signal);
    EXPECT_EQ(entries(), 0u) << strsignal(signal);
  }
  // SIGKILL cannot be handled: its temporary stays, for remove_stale_temporaries, which leaves
  // files that only look alike.
  const int status = killed_mid_write(SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status));
  std::ofstream(dir_ / "notes.tmp") << "x";
  std::ofstream(dir_ / "a.tmp.12ab") << "x";
  EXPECT_EQ(entries(), 3u);
  remove_stale_temporaries(dir_);
  EXPECT_EQ(entries(), 2u);
  EXPECT_TRUE(fs::exists(dir_ / "notes.tmp"));
}

TEST_F(PosixTest, CreatedDirectoriesUnkeptRemovesWhatItCreatedAndOnlyThat) {
  fs::create_directories(dir_ / "existing");
  {
    CreatedDirectories made(dir_ / "existing" / "a" / "b/");
    EXPECT_TRUE(fs::is_directory(dir_ / "existing" / "a" / "b"));
  }
  EXPECT_FALSE(fs::exists(dir_ / "existing" / "a"));
  EXPECT_TRUE(fs::is_directory(dir_ / "existing"));  // not its own: stays
  {
    CreatedDirectories made(dir_ / "c" / "d");
    write_file_atomic(dir_ / "c" / "kept-by-its-file", "x");
  }
  EXPECT_FALSE(fs::exists(dir_ / "c" / "d"));  // empty: removed
  EXPECT_TRUE(fs::exists(dir_ / "c" / "kept-by-its-file"));  // a parent with a file in it stays
  {
    CreatedDirectories made(dir_ / "e");
    made.keep();
  }
  EXPECT_TRUE(fs::is_directory(dir_ / "e"));
}

// The entries of `dir` whose names start with `prefix`.
std::size_t named(const fs::path& dir, const std::string& prefix) {
  std::size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) n += entry.path().filename().string().starts_with(prefix);
  return n;
}

TEST_F(PosixTest, AStagedDirectoryShowsNothingUntilCommittedThenReplacesOnlyItsOwnEntries) {
  const fs::path out = dir_ / "new" / "out";
  {
    StagedDirectory staged(out);  // a failing writer: nothing of it stays, not even the parent it made
    write_file_atomic(staged.path() / "table.csv", "half");
    EXPECT_EQ(staged.path().parent_path(), dir_ / "new");
    EXPECT_FALSE(fs::exists(out));
  }
  EXPECT_FALSE(fs::exists(dir_ / "new"));

  fs::create_directories(out / "runs" / "old-run");
  write_file_atomic(out / "table.csv", "old");
  write_file_atomic(out / "theirs.txt", "not the writer's");
  {
    StagedDirectory staged(out.string() + "/");  // "out/" is the same target
    fs::create_directories(staged.path() / "runs" / "1");
    write_file_atomic(staged.path() / "runs" / "1" / "summary.json", "{}");
    write_file_atomic(staged.path() / "table.csv", "new");
    EXPECT_EQ(read(out / "table.csv"), "old");
    staged.commit();
  }
  EXPECT_EQ(read(out / "table.csv"), "new");
  EXPECT_EQ(read(out / "runs" / "1" / "summary.json"), "{}");
  EXPECT_FALSE(fs::exists(out / "runs" / "old-run")) << "an entry of the same name is replaced whole";
  EXPECT_EQ(read(out / "theirs.txt"), "not the writer's");
  EXPECT_FALSE(fs::exists(out / ".lock"));
  EXPECT_EQ(named(dir_ / "new", ".out.partial-"), 0u);
}

TEST_F(PosixTest, TheStagedDirectoryOfAKilledWriterGoesWithTheNextWriterOfTheSameTarget) {
  const fs::path out = dir_ / "out";
  int pipe[2];
  ASSERT_EQ(::pipe(pipe), 0);
  const pid_t writer = ::fork();
  if (writer == 0) {
    StagedDirectory staged(out);
    write_file_atomic(staged.path() / "table.csv", "half");
    if (::write(pipe[1], "x", 1) != 1) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  char ready = 0;
  ASSERT_EQ(::read(pipe[0], &ready, 1), 1);
  ::close(pipe[0]);
  ::close(pipe[1]);
  {
    StagedDirectory other(dir_ / "other");  // another target's writer leaves it alone
    EXPECT_EQ(named(dir_, ".out.partial-"), 1u);
    StagedDirectory alive(out);  // nor while its writer lives
    EXPECT_EQ(named(dir_, ".out.partial-"), 2u);
  }
  ::kill(writer, SIGKILL);
  ::waitpid(writer, nullptr, 0);
  EXPECT_EQ(named(dir_, ".out.partial-"), 1u);
  {
    StagedDirectory next(out);
    EXPECT_EQ(named(dir_, ".out.partial-"), 1u) << "the killed writer's is gone, the next one's is there";
    next.commit();
  }
  EXPECT_EQ(named(dir_, ".out.partial-"), 0u);
  EXPECT_FALSE(fs::exists(out / "table.csv"));
}

TEST_F(PosixTest, AFileLockIsExclusiveNamesItsHolderAndIsHeldByChildrenThatInheritIt) {
  const fs::path path = dir_ / ".lock";
  EXPECT_EQ(holder_of(path), std::nullopt);  // no lock file: free
  auto lock = FileLock::try_take(path);
  ASSERT_TRUE(lock);
  EXPECT_EQ(holder_of(path), 0);  // held, no pid recorded yet
  lock->record(4242);
  EXPECT_EQ(holder_of(path), 4242);
  EXPECT_FALSE(FileLock::try_take(path));  // another open file, even in this process
  SpawnOptions options;
  options.inherit_fds = {lock->fd()};
  const pid_t child = spawn({"sleep", "60"}, options);
  lock.reset();
  EXPECT_EQ(holder_of(path), 4242) << "the child holds it";
  ::kill(child, SIGKILL);
  EXPECT_EQ(wait_exit(child), 128 + SIGKILL);
  EXPECT_EQ(holder_of(path), std::nullopt);
  EXPECT_TRUE(FileLock::try_take(path));
}

TEST_F(PosixTest, ChildrenDieWithTheirParentEvenWhenItIsKilled) {
  // A parent spawns `sleep 60`, tells its pid and is killed with SIGKILL: the sleep goes too,
  // unless it was spawned with die_with_parent off.
  for (const bool die_with_parent : {true, false}) {
    int pipe[2];
    ASSERT_EQ(::pipe(pipe), 0);
    const pid_t parent = ::fork();
    if (parent == 0) {
      SpawnOptions options;
      options.die_with_parent = die_with_parent;
      const pid_t sleeper = spawn({"sleep", "60"}, options);
      if (::write(pipe[1], &sleeper, sizeof sleeper) != sizeof sleeper) ::_exit(1);
      ::pause();
      ::_exit(0);
    }
    pid_t sleeper = 0;
    ASSERT_EQ(::read(pipe[0], &sleeper, sizeof sleeper), static_cast<ssize_t>(sizeof sleeper));
    ::close(pipe[0]);
    ::close(pipe[1]);
    ::kill(parent, SIGKILL);
    ::waitpid(parent, nullptr, 0);
    if (die_with_parent) {
      EXPECT_TRUE(eventually([&] { return gone(sleeper); }, 5)) << "the child outlived its parent";
    } else {
      EXPECT_FALSE(eventually([&] { return gone(sleeper); }, 0.3)) << "the test cannot tell";
      ::kill(sleeper, SIGKILL);
    }
  }
}

TEST_F(PosixTest, ReadNumber) {
  write_file_atomic(dir_ / "n", "4096\n");
  EXPECT_EQ(read_number(dir_ / "n"), 4096);
  write_file_atomic(dir_ / "t", "many\n");
  EXPECT_EQ(read_number(dir_ / "t"), std::nullopt);
  EXPECT_EQ(read_number(dir_ / "absent"), std::nullopt);
}

TEST_F(PosixTest, ThrowErrnoCarriesStrerror) {
  errno = ENOENT;
  try {
    throw_errno("open of x");
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("open of x"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::strerror(ENOENT)), std::string::npos) << e.what();
  }
}

TEST_F(PosixTest, SpawnReturnsTheExitStatus) {
  EXPECT_EQ(wait_exit(spawn({"sh", "-c", "exit 3"})), 3);
  EXPECT_EQ(wait_exit(spawn({"true"})), 0);
  EXPECT_EQ(wait_exit(spawn({"sh", "-c", "kill -9 $$"})), 128 + 9);
  SpawnOptions missing;
  missing.search_path = false;
  missing.output = dir_ / "log";
  EXPECT_EQ(wait_exit(spawn({"/nonexistent/program"}, missing)), 127);
  SpawnOptions options;
  options.output = dir_ / "out.log";
  options.null_stdin = true;
  EXPECT_EQ(wait_exit(spawn({"sh", "-c", "echo to-out; echo to-err >&2; cat"}, options)), 0);
  EXPECT_EQ(read(dir_ / "out.log"), "to-out\nto-err\n");
  int pipe[2];
  ASSERT_EQ(::pipe(pipe), 0);
  SpawnOptions piped;
  piped.output_fd = pipe[1];
  const pid_t child = spawn({"sh", "-c", "echo to-out; echo to-err >&2"}, piped);
  ::close(pipe[1]);
  std::string got;
  char buffer[64];
  for (ssize_t n; (n = ::read(pipe[0], buffer, sizeof buffer)) > 0;) got.append(buffer, static_cast<std::size_t>(n));
  ::close(pipe[0]);
  EXPECT_EQ(wait_exit(child), 0);
  EXPECT_EQ(got, "to-out\nto-err\n");
}

TEST(Deadline, MillisecondsLeft) {
  EXPECT_EQ(ms_left(Clock::now() - std::chrono::seconds(1)), 0);
  const int left = ms_left(deadline_after(1.0));
  EXPECT_GT(left, 900);
  EXPECT_LE(left, 1000);
  EXPECT_EQ(duration_of(0.25), std::chrono::milliseconds(250));
}

}  // namespace
