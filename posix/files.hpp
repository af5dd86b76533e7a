#pragma once
// Files written so that a reader never sees half of one, and small files read as numbers.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace rmai::posix {

// Writes `path` through a temporary in the same directory (named with the pid, since Slurm tasks of
// one sweep may write the same file at once), fsyncs it and renames it into place. On failure the
// temporary is removed, `path` is untouched and the error (std::runtime_error) names the file and
// strerror.
void write_file_atomic(const std::filesystem::path& path, const std::string& text);
void write_file_atomic(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);

// Several files: all temporaries written first, then renamed in order, so that a failure leaves
// none of them changed (results whose last file marks them complete).
void write_files_atomic(const std::vector<std::pair<std::filesystem::path, std::string>>& files);

// The number a /proc or /sys file holds, or nothing when it cannot be read.
std::optional<std::int64_t> read_number(const std::filesystem::path& path);

}  // namespace rmai::posix
