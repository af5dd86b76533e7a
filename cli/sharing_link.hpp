#pragma once
// The shaped link of `rmai validate --sharing`: a network namespace for the memd, joined to this one
// by a veth pair whose namespace end shapes its egress (the data memd sends to its clients) with a
// tbf qdisc, so that the link, not loopback's ~2-3 GB/s, is what the clients share.
//
// Names carry the owner's pid: namespace rmai-v<pid>, links rmai-v<pid>h (this side) and
// rmai-v<pid>n (memd's side), addresses 198.18.x.y/30 (RFC 2544's benchmarking range, routed
// nowhere). The destructor tears it all down, and so do SIGINT, SIGTERM and SIGHUP before the
// process dies of them; after a SIGKILL the next SharedLink (or reclaim_stale_links) removes what
// is left of any owner that is gone.
#include <sys/types.h>

#include <string>
#include <vector>

namespace rmai::cli {

class SharedLink {
 public:
  // Creates the namespace and the link at `rate` bytes/s (the caller checks its range). Throws
  // InputError naming `option` when this process is not root or the machine lacks ip/tc, network
  // namespaces, veth or tbf.
  SharedLink(double rate, const std::string& option);
  ~SharedLink();
  SharedLink(const SharedLink&) = delete;
  SharedLink& operator=(const SharedLink&) = delete;

  const std::string& name() const { return name_; }         // the namespace
  const std::string& host_link() const { return host_; }    // this side of the pair
  const std::string& memd_address() const { return memd_address_; }  // memd's side, no port
  // An open descriptor of the namespace (for setns: posix::SpawnOptions::netns_fd).
  int netns_fd() const { return netns_fd_; }
  // `tc -s qdisc show` of memd's side: bytes sent, drops, overlimits.
  std::string qdisc_stats() const;

 private:
  void teardown();

  std::string name_, host_, peer_, memd_address_;
  int netns_fd_ = -1;
};

// Removes the namespaces and links named after an owner pid whose process is gone (or is another
// process that reused the pid); returns their names. Needs root.
std::vector<std::string> reclaim_stale_links();

// The namespaces and links of this naming scheme that exist now (for tests and messages).
std::vector<std::string> existing_links();

}  // namespace rmai::cli
