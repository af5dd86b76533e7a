#pragma once
// Lines of a file through one large buffer, shared by the text readers (CSV, JSON lines): a getline
// per row would cost more than the parsing.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/errors.hpp"

namespace rmai::traces {

class LineReader {
 public:
  explicit LineReader(const std::filesystem::path& path)
      : name_(path.string()), file_(std::fopen(path.c_str(), "rb")) {
    if (!file_) throw InputError(name_, std::string("cannot open: ") + std::strerror(errno));
    // A small file gets a small buffer: zero-filling a whole megabyte per open dominated the time
    // of reading many small files (the fuzz targets). Unknown sizes (pipes) get the full buffer.
    struct stat info {};
    if (::fstat(::fileno(file_.get()), &info) == 0 && S_ISREG(info.st_mode))
      buffer_.resize(std::clamp<std::size_t>(static_cast<std::size_t>(info.st_size) + 1,
                                             std::size_t{4096}, kBuffer));
    else
      buffer_.resize(kBuffer);
  }

  // The next line without its end of line ("\n" or "\r\n"), valid until the next call; false at
  // the end of the file. A last line without newline is returned like the others.
  bool next(std::string_view& line) {
    for (;;) {
      const char* start = buffer_.data() + begin_;
      const std::size_t size = end_ - begin_;
      if (const void* found = size ? std::memchr(start, '\n', size) : nullptr) {
        const char* stop = static_cast<const char*>(found);
        line = std::string_view(start, stop - start);
        begin_ = stop + 1 - buffer_.data();
        terminated_ = true;
        ++lines_;
        break;
      }
      if (eof_) {
        if (size == 0) return false;
        line = std::string_view(start, size);
        begin_ = end_;
        terminated_ = false;
        ++lines_;
        break;
      }
      // Keep the partial line at the front and read more behind it.
      std::memmove(buffer_.data(), start, size);
      begin_ = 0;
      end_ = size;
      if (size >= kMaxLine)  // no record is this long: a damaged or hostile file, not a trace
        throw InputError(name_ + ":" + std::to_string(lines_ + 1),
                         "a line longer than " + std::to_string(kMaxLine >> 20) + " MiB: not a trace record");
      if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);  // a long line
      const std::size_t got =
          std::fread(buffer_.data() + end_, 1, buffer_.size() - end_, file_.get());
      if (got == 0) {
        if (std::ferror(file_.get()))
          throw InputError(name_, std::string("read error: ") + std::strerror(errno));
        eof_ = true;
      }
      end_ += got;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return true;
  }

  // Whether the line last returned ended with a newline: only the last line of a file may not,
  // which tells a truncated record from a malformed one.
  bool terminated() const { return terminated_; }

 private:
  struct Closer {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  std::string name_;
  std::unique_ptr<std::FILE, Closer> file_;
  static constexpr std::size_t kBuffer = std::size_t{1} << 20;  // reads in large blocks
  // The longest line accepted (docs/interfaces.md, "Bounds on input sizes"); the buffer stays below
  // twice this.
  static constexpr std::size_t kMaxLine = std::size_t{4} << 20;
  std::uint64_t lines_ = 0;  // lines returned so far
  std::vector<char> buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  bool eof_ = false;
  bool terminated_ = true;
};

}  // namespace rmai::traces
