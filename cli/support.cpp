#include "cli/support.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "config/errors.hpp"

namespace rmai::cli {

const std::string& option_value(const std::vector<std::string>& args, std::size_t& i) {
  if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0) throw InputError(args[i], "needs a value");
  return args[++i];
}

bool take_experiment_option(const std::vector<std::string>& args, std::size_t& i, std::vector<std::string>& sets) {
  const std::string& a = args[i];
  if (a.rfind("--set=", 0) == 0) {
    sets.push_back(a.substr(6));
    return true;
  }
  const char* key = a == "--set" ? "" : a == "--seed" ? "seed=" : a == "--mode" ? "mode=" : nullptr;
  if (!key) return false;
  sets.push_back(key + option_value(args, i));
  return true;
}

pid_t start_program(const std::vector<std::string>& args) {
  std::cout.flush();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::perror(args[0].c_str());
    ::_exit(127);
  }
  return pid;
}

int finish(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_atomic(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp.string());
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace rmai::cli
