#include "posix/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace rmai::posix {
namespace fs = std::filesystem;

namespace {

std::runtime_error failure(const fs::path& file, const char* what) {
  return std::runtime_error(file.string() + ": " + what + ": " + std::strerror(errno));
}

fs::path temporary_of(const fs::path& path) {
  fs::path temporary = path;
  temporary += ".tmp." + std::to_string(::getpid());
  return temporary;
}

// Writes and fsyncs `temporary`; removes it and throws on failure.
void write_temporary(const fs::path& temporary, const std::function<void(std::ostream&)>& write) {
  try {
    {
      std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
      if (!out) throw failure(temporary, "cannot create");
      write(out);
      out.flush();
      if (!out) throw failure(temporary, "write failed");
    }
    // The data on disk before the rename makes it visible: a crash leaves the old file or the new.
    const int fd = ::open(temporary.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw failure(temporary, "cannot reopen");
    const bool synced = ::fsync(fd) == 0;
    const int saved = errno;
    ::close(fd);
    errno = saved;
    if (!synced) throw failure(temporary, "fsync failed");
  } catch (...) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw;
  }
}

void rename_into_place(const fs::path& temporary, const fs::path& path) {
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    std::error_code ignored;
    fs::remove(temporary, ignored);
    errno = saved;
    throw failure(path, "cannot rename the temporary into place");
  }
}

}  // namespace

void write_file_atomic(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  const fs::path temporary = temporary_of(path);
  write_temporary(temporary, write);
  rename_into_place(temporary, path);
}

void write_file_atomic(const fs::path& path, const std::string& text) {
  write_file_atomic(path, [&text](std::ostream& out) { out << text; });
}

void write_files_atomic(const std::vector<std::pair<fs::path, std::string>>& files) {
  std::vector<fs::path> written;
  try {
    for (const auto& file : files) {  // not a structured binding: clang 14 cannot capture one
      const std::string& text = file.second;
      write_temporary(temporary_of(file.first), [&text](std::ostream& out) { out << text; });
      written.push_back(temporary_of(file.first));
    }
  } catch (...) {
    std::error_code ignored;
    for (const auto& t : written) fs::remove(t, ignored);
    throw;
  }
  for (const auto& [path, text] : files) rename_into_place(temporary_of(path), path);
}

std::optional<std::int64_t> read_number(const fs::path& path) {
  std::ifstream in(path);
  std::int64_t value = 0;
  if (in >> value) return value;
  return std::nullopt;
}

}  // namespace rmai::posix
