// `rmai reproduce`: every paper experiment as a sweep, then the figures and the report.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "config.hpp"
#include "errors.hpp"

namespace rmai::cli {
namespace fs = std::filesystem;

namespace {

// Runs a program with the same stdout and stderr, and returns its exit code (128 + signal if killed).
int spawn(const std::vector<std::string>& args) {
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
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The reproduction's experiments: the YAMLs in experiments/ with a sweep block, by name.
std::vector<fs::path> paper_experiments() {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(config::home_dir() / "experiments")) {
    if (entry.path().extension() != ".yaml") continue;
    const YAML::Node root = config::load_yaml_file(entry.path());
    if (root.IsMap() && root["sweep"]) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> figure_scripts() {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(config::home_dir() / "plots"))
    if (entry.path().extension() == ".py" && entry.path().filename().string().starts_with("fig"))
      out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int reproduce(const std::vector<std::string>& args) {
  fs::path out = "results/reproduce";
  bool quick = false;
  std::string jobs = std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::string> only;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto value = [&] {
      if (i + 1 >= args.size()) throw InputError(args[i], "needs a value");
      return args[++i];
    };
    if (args[i] == "--out") {
      out = value();
    } else if (args[i] == "--quick") {
      quick = true;
    } else if (args[i] == "--jobs") {
      jobs = value();
    } else if (args[i] == "--only") {
      only.push_back(value());
    } else {
      throw InputError(args[i], "unknown option (rmai reproduce [--out DIR] [--quick] [--jobs N] [--only NAME]...)");
    }
  }
  auto experiments = paper_experiments();
  for (const auto& name : only)
    if (std::none_of(experiments.begin(), experiments.end(), [&](const fs::path& p) { return p.stem() == name; }))
      throw InputError("--only " + name, "no such experiment with a sweep in experiments/");
  if (!only.empty())
    std::erase_if(experiments, [&](const fs::path& p) { return std::find(only.begin(), only.end(), p.stem()) == only.end(); });

  const auto start = std::chrono::steady_clock::now();
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> failed;
  for (const auto& experiment : experiments) {
    std::cerr << "rmai reproduce: " << experiment.stem().string() << "\n";
    std::vector<std::string> sweep{self, "sweep", experiment.string(), "--out", (out / experiment.stem()).string(),
                                   "--jobs", jobs};
    if (quick) sweep.push_back("--quick");
    const int code = spawn(sweep);
    if (code == 2) return 2;  // a bad experiment file: nothing else is worth running
    if (code != 0) failed.push_back("experiment " + experiment.stem().string());
  }
  fs::create_directories(out / "figures");
  for (const auto& script : figure_scripts())
    if (spawn({"python3", script.string(), out.string(), (out / "figures").string()}) != 0)
      failed.push_back("figure " + script.stem().string());
  if (spawn({"python3", (config::home_dir() / "plots" / "report.py").string(), out.string()}) != 0)
    failed.push_back("report");

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "rmai reproduce: %zu experiments in %.0f s; report: %s\n", experiments.size(), seconds,
               (out / "report.html").c_str());
  for (const auto& f : failed) std::cerr << "rmai reproduce: failed: " << f << "\n";
  return failed.empty() ? 0 : 1;
}

}  // namespace rmai::cli
