#include "cli/sharing_link.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "config/errors.hpp"
#include "posix/errors.hpp"
#include "posix/files.hpp"
#include "posix/process.hpp"

namespace rmai::cli {
namespace fs = std::filesystem;
namespace {

const char* const kPrefix = "rmai-v";
const fs::path kNetnsDir = "/run/netns";         // where `ip netns` keeps the namespaces it names
const char* const kLock = "/run/lock/rmai-netns.lock";  // serializes choosing names and addresses

// tbf's bucket: two 64 KiB GSO packets (a bucket smaller than a packet makes tbf split every one),
// small against a 5 MB expert, so that the rate holds from the first read of a switch.
constexpr std::uint64_t kBurstBytes = 128 << 10;
// tbf's queue: room for every client's TCP small-queue budget (tcp_limit_output_bytes, 4 MiB here)
// at N = 4 and more, so the link queues rather than drops (a drop costs TCP a 200 ms timeout on
// a link this short, which would be measured as contention).
constexpr std::uint64_t kQueueBytes = 64ull << 20;

// The tool's path: PATH, then the sbin directories a non-login root shell may lack.
std::string find_tool(const std::string& name) {
  std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
  dirs += ":/usr/sbin:/sbin:/usr/bin:/bin";
  std::stringstream in(dirs);
  for (std::string dir; std::getline(in, dir, ':');)
    if (!dir.empty() && ::access((fs::path(dir) / name).c_str(), X_OK) == 0) return (fs::path(dir) / name).string();
  return "";
}

struct Outcome {
  int code;
  std::string output;  // stdout and stderr together
};

// Runs a tool and collects what it says.
Outcome run_tool(const std::vector<std::string>& args) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) posix::throw_errno("pipe2");
  posix::SpawnOptions options;
  options.search_path = false;
  options.output_fd = fds[1];
  options.null_stdin = true;
  pid_t pid;
  try {
    pid = posix::spawn(args, options);
  } catch (...) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw;
  }
  ::close(fds[1]);
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buffer, std::size_t(n));
  }
  ::close(fds[0]);
  const int code = posix::wait_exit(pid);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return {code, out};
}

const std::string& ip_tool() {
  static const std::string path = find_tool("ip");
  return path;
}
const std::string& tc_tool() {
  static const std::string path = find_tool("tc");
  return path;
}

Outcome ip(std::vector<std::string> args) {
  args.insert(args.begin(), ip_tool());
  return run_tool(args);
}

// When process `pid` started, in seconds since the epoch (btime + its start in ticks since boot);
// NAN when there is no such process.
double process_start(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return NAN;
  const auto end_of_name = stat.rfind(')');  // the name may hold spaces and parentheses
  if (end_of_name == std::string::npos) return NAN;
  std::istringstream fields(stat.substr(end_of_name + 2));
  std::string field;
  for (int i = 3; i < 22 && fields >> field; ++i) {
  }
  double ticks = 0;
  if (!(fields >> ticks)) return NAN;
  std::ifstream boot("/proc/stat");
  double btime = 0;
  for (std::string key; boot >> key;)
    if (key == "btime" && boot >> btime) break;
  return btime + ticks / double(::sysconf(_SC_CLK_TCK));
}

// The owner pid of a name of this scheme ("rmai-v123", "rmai-v123h"), or 0.
long owner_of(const std::string& name) {
  static const std::regex scheme("rmai-v([0-9]{1,9})[hn]?");
  std::smatch m;
  return std::regex_match(name, m, scheme) ? std::atol(m[1].str().c_str()) : 0;
}

// A namespace's owner is alive when its pid runs a process that started before the namespace was
// made (a pid reused later is not the owner). btime has 1 s steps: 2 s of slack.
bool netns_owner_alive(const fs::path& file, long pid) {
  const double started = process_start(pid);
  if (std::isnan(started)) return false;
  struct stat info {};
  if (::stat(file.c_str(), &info) != 0) return true;  // cannot tell: leave it
  return started <= double(info.st_mtim.tv_sec) + 2;
}

std::vector<std::string> netns_names() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kNetnsDir, ec))
    if (owner_of(entry.path().filename().string())) out.push_back(entry.path().filename().string());
  return out;
}

// Links of this scheme in this namespace, from `ip -o link show` ("5: rmai-v12h@if2: <...").
std::vector<std::string> link_names() {
  std::vector<std::string> out;
  std::istringstream lines(ip({"-o", "link", "show"}).output);
  for (std::string line; std::getline(lines, line);) {
    const auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    std::string name = line.substr(colon + 2);
    name = name.substr(0, name.find_first_of("@: "));
    if (owner_of(name)) out.push_back(name);
  }
  return out;
}

// Serializes setups: the stale ones are removed and a free address chosen by one process at a time.
class SetupLock {
 public:
  SetupLock() : fd_(::open(kLock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ >= 0)
      while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
  }
  ~SetupLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  SetupLock(const SetupLock&) = delete;
  SetupLock& operator=(const SetupLock&) = delete;

 private:
  int fd_;
};

// Teardown on SIGINT, SIGTERM and SIGHUP: the handler can only use what is prepared here, in fixed
// buffers, and async-signal-safe calls (_Fork, which unlike fork runs no atfork handlers; execv,
// waitpid). Deleting this side of the pair removes both ends at once; the namespace's name goes
// with `ip netns del` (the namespace itself when memd, which dies with this process, has left it).
struct Emergency {
  char ip[512] = {};
  char link[32] = {};
  char netns[32] = {};
  struct sigaction old[3] = {};
  bool armed = false;
} emergency;
const int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};

void run_ip_from_handler(const char* a, const char* b, const char* c) {
  const pid_t pid = ::_Fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) {
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
    }
    char* argv[] = {emergency.ip, const_cast<char*>(a), const_cast<char*>(b), const_cast<char*>(c), nullptr};
    ::execv(emergency.ip, argv);
    ::_exit(127);
  }
  if (pid > 0)
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
}

void tear_down_and_die(int signal) {
  const int saved = errno;
  run_ip_from_handler("link", "del", emergency.link);
  run_ip_from_handler("netns", "del", emergency.netns);
  // The action that was there before, and the signal again (blocked while this handler runs, it
  // comes on return): the process ends as it would have without the link. For rmai that is the
  // default action (cli/main.cpp takes SIGINT and SIGTERM back from libinfinipath's handler).
  for (int i = 0; i < 3; ++i)
    if (kSignals[i] == signal) ::sigaction(signal, &emergency.old[i], nullptr);
  ::raise(signal);
  errno = saved;
}

void arm(const std::string& link, const std::string& netns) {
  if (emergency.armed) throw std::logic_error("one SharedLink at a time");
  // Before this handler, not after it (they only take over a default action): the teardown restores
  // them and raises the signal again, so the results' temporaries go too.
  posix::install_temporary_handlers();
  std::snprintf(emergency.ip, sizeof emergency.ip, "%s", ip_tool().c_str());
  std::snprintf(emergency.link, sizeof emergency.link, "%s", link.c_str());
  std::snprintf(emergency.netns, sizeof emergency.netns, "%s", netns.c_str());
  struct sigaction action {};
  action.sa_handler = tear_down_and_die;
  sigemptyset(&action.sa_mask);
  for (int i = 0; i < 3; ++i) sigaddset(&action.sa_mask, kSignals[i]);  // no teardown inside a teardown
  for (int i = 0; i < 3; ++i) {
    ::sigaction(kSignals[i], nullptr, &emergency.old[i]);
    // A signal the caller ignores (SIGHUP under nohup) stays ignored: it ends nothing to clean up after.
    if (emergency.old[i].sa_handler != SIG_IGN) ::sigaction(kSignals[i], &action, nullptr);
  }
  emergency.armed = true;
}

void disarm() {
  if (!emergency.armed) return;
  for (int i = 0; i < 3; ++i) ::sigaction(kSignals[i], &emergency.old[i], nullptr);
  emergency.armed = false;
}

// The 198.18.0.0/15 addresses in use on this side, as numbers.
std::set<std::uint32_t> used_benchmark_addresses() {
  std::set<std::uint32_t> out;
  static const std::regex inet("inet (198)\\.(1[89])\\.([0-9]+)\\.([0-9]+)");
  const std::string text = ip({"-o", "-4", "addr", "show"}).output;
  for (std::sregex_iterator it(text.begin(), text.end(), inet), end; it != end; ++it)
    out.insert((198u << 24) | (std::stoul((*it)[2]) << 16) | (std::stoul((*it)[3]) << 8) | std::stoul((*it)[4]));
  return out;
}

std::string dotted(std::uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." + std::to_string((a >> 8) & 255) + "." +
         std::to_string(a & 255);
}

}  // namespace

std::vector<std::string> existing_links() {
  std::vector<std::string> out = netns_names();
  for (auto& l : link_names()) out.push_back(l);
  return out;
}

std::vector<std::string> reclaim_stale_links() {
  std::vector<std::string> removed;
  for (const auto& name : netns_names()) {
    if (netns_owner_alive(kNetnsDir / name, owner_of(name))) continue;
    if (ip({"netns", "del", name}).code == 0) removed.push_back(name);
  }
  // A link outlives its namespace's name while a process stays inside: whatever remains of a dead
  // owner goes too (no creation time here: a live pid counts as the owner).
  for (const auto& name : link_names()) {
    if (!std::isnan(process_start(owner_of(name)))) continue;
    if (ip({"link", "del", name}).code == 0) removed.push_back(name);
  }
  return removed;
}

SharedLink::SharedLink(double rate, const std::string& option) {
  if (::geteuid() != 0)
    throw InputError(option, "needs root: it makes a network namespace, a veth pair and a tbf qdisc");
  if (ip_tool().empty() || tc_tool().empty())
    throw InputError(option, "needs iproute2's ip and tc, which are not installed (scripts/setup.sh installs them)");
  const std::string pid = std::to_string(::getpid());
  name_ = kPrefix + pid;
  host_ = name_ + "h";
  peer_ = name_ + "n";
  SetupLock lock;
  for (const auto& name : reclaim_stale_links())
    std::fprintf(stderr, "rmai validate: removed %s, left by a run that is gone\n", name.c_str());
  // A free /30 in 198.18.0.0/15 (32768 of them), starting from one the pid chooses.
  const auto used = used_benchmark_addresses();
  const std::uint32_t base = (198u << 24) | (18u << 16);
  std::uint32_t subnet = 0;
  for (std::uint32_t k = 0, first = std::uint32_t(::getpid()) % 32768; k < 32768; ++k) {
    subnet = base + 4 * ((first + k) % 32768);
    if (!used.count(subnet + 1) && !used.count(subnet + 2)) break;
  }
  memd_address_ = dotted(subnet + 1);
  const std::string host_address = dotted(subnet + 2);

  arm(host_, name_);
  try {
    const auto step = [&](const std::vector<std::string>& args, const std::string& what) {
      const Outcome o = run_tool(args);
      if (o.code != 0) throw InputError(option, what + ": '" + o.output + "'");
    };
    step({ip_tool(), "netns", "add", name_}, "network namespaces are unavailable here (ip netns add failed)");
    step({ip_tool(), "link", "add", host_, "type", "veth", "peer", "name", peer_, "netns", name_},
         "cannot make a veth pair into the namespace");
    step({ip_tool(), "addr", "add", host_address + "/30", "dev", host_}, "ip addr add");
    step({ip_tool(), "link", "set", host_, "up"}, "ip link set up");
    step({ip_tool(), "-n", name_, "addr", "add", memd_address_ + "/30", "dev", peer_}, "ip addr add in the namespace");
    step({ip_tool(), "-n", name_, "link", "set", peer_, "up"}, "ip link set up in the namespace");
    step({tc_tool(), "-n", name_, "qdisc", "add", "dev", peer_, "root", "tbf", "rate",
          std::to_string(std::llround(rate * 8)) + "bit", "burst", std::to_string(kBurstBytes), "limit",
          std::to_string(kQueueBytes)},
         "tc cannot shape the link with tbf");
    netns_fd_ = ::open((kNetnsDir / name_).c_str(), O_RDONLY | O_CLOEXEC);
    if (netns_fd_ < 0) throw InputError(option, "cannot open " + (kNetnsDir / name_).string() + ": " + std::strerror(errno));
  } catch (...) {
    teardown();
    throw;
  }
}

SharedLink::~SharedLink() { teardown(); }

void SharedLink::teardown() {
  if (netns_fd_ >= 0) ::close(netns_fd_);
  netns_fd_ = -1;
  // Each may find nothing (a setup that failed half-way): only what exists afterwards matters.
  try {
    ip({"link", "del", host_});
    ip({"netns", "del", name_});
  } catch (const std::exception& error) {
    std::fprintf(stderr, "rmai validate: tearing down %s: %s\n", name_.c_str(), error.what());
  }
  disarm();
}

std::string SharedLink::qdisc_stats() const {
  return run_tool({tc_tool(), "-n", name_, "-s", "qdisc", "show", "dev", peer_}).output;
}

}  // namespace rmai::cli
