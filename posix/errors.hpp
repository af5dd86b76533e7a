#pragma once
// A failed system call as an exception: std::system_error with errno, whose what() ends with strerror.
#include <cerrno>
#include <string>
#include <system_error>

namespace rmai::posix {

[[noreturn]] inline void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace rmai::posix
