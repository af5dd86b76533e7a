#pragma once
// `rmai calibrate`: measures this machine with the probes of calib/probes.hpp and composes the
// platform preset that describes it (calib/preset.hpp), so that the simulator predicts what the
// emulator, or a cluster's real hardware, does.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace rmai::calib {

struct Options {
  std::string provider = "tcp";                    // the transport to memd: tcp | shm | verbs
  std::optional<std::filesystem::path> disk;       // measure the disk holding this directory (nvme)
  std::optional<std::string> server;               // host:port of a running memd (else a child on loopback)
  std::optional<std::filesystem::path> secret_file;  // that memd's secret
  unsigned repeats = 5;
  bool quick = false;
  std::string command;  // the command line, for the preset's header
};

// Checks the options and what the probes need of this machine (userfaultfd, huge pages, the
// provider, the disk directory), then runs every probe and returns the preset's text. Throws
// InputError, naming the option, before any probe runs; anything else (a probe that fails, a
// transport error) as std::exception. `note` gets the progress lines.
std::string calibrate(const Options& options, const std::function<void(const std::string&)>& note);

// The most repeats a probe may take (each takes a fixed amount of memory and time).
inline constexpr unsigned kMaxRepeats = 100;

}  // namespace rmai::calib
