// The POSIX helpers (posix/): atomic writes leave no temporary behind, errors carry strerror, child
// processes report their exit status.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
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
}

TEST(Deadline, MillisecondsLeft) {
  EXPECT_EQ(ms_left(Clock::now() - std::chrono::seconds(1)), 0);
  const int left = ms_left(deadline_after(1.0));
  EXPECT_GT(left, 900);
  EXPECT_LE(left, 1000);
  EXPECT_EQ(duration_of(0.25), std::chrono::milliseconds(250));
}

}  // namespace
