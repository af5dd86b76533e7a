#pragma once
// The fast path's own fluid model of the transfers that can share a link: a memory server's NIC or
// a pool port that several nodes cross, a node's DRAM under overlapping chunks. It shares links as
// SimGrid's CM02 does as default_simgrid_options() configures it (no cross traffic, no TCP window,
// no bandwidth or latency factors): a transfer waits its route's latency, taking no bandwidth, then
// its bytes flow at their weighted max-min fair share, a FATPIPE link capping each flow on its own.
// As in CM02, a flow's sharing penalty is its route's latency (1 for a route without any): on a
// saturated link, flows get bandwidth in inverse proportion to their latency, as TCP flows of
// different round trips do. Without SimGrid:
// the rates are solved only over the flows in flight, with no activity, actor or timer per transfer
// (docs/architecture.md, "The fast path"). Dates are kept as SimGrid's are, start + latency, then
// + bytes / rate for a flow alone, so a transfer alone on its route ends where SimGrid ends it.
#include <cstdint>
#include <limits>
#include <queue>
#include <span>
#include <vector>

namespace rmai::sim {

struct FabricLink {
  double bandwidth = 0;   // bytes/s
  bool per_flow = false;  // a FATPIPE link: each flow may take all of it (a per-flow cap)
};

class Fabric {
 public:
  // A flow in flight, until finish() is called for it (ids are reused after).
  using FlowId = std::uint32_t;

  explicit Fabric(std::vector<FabricLink> links);

  // A transfer of `bytes` over `links` (indices into the links given above), issued at
  // `at` >= now(): after `latency`, its bytes flow.
  FlowId start(double at, double latency, double bytes, std::span<const std::uint32_t> links);
  // Whether no flow is in flight.
  bool idle() const { return joining_.empty() && active_.empty(); }
  // Moves time on to the next end of a flow and returns that flow; now() is its end. Not idle().
  FlowId advance();
  bool ended(FlowId flow) const { return flows_[flow].ended; }
  // The flow's end, once ended(); its id is free again.
  double finish(FlowId flow);
  double now() const { return now_; }

 private:
  struct Flow {
    std::vector<std::uint32_t> shared_links;  // the route's links that flows share (not per-flow)
    double cap = 0;        // the smallest of the route's per-flow links (infinite: none)
    double penalty = 1;    // SimGrid's sharing penalty (above)
    double weight = 1;     // 1 / penalty
    double remaining = 0;  // bytes not moved yet
    double rate = 0;       // bytes/s, while active
    double end = 0;
    bool ended = false;
  };
  struct Joining {  // a flow in its latency, until `at`
    double at;
    FlowId flow;
    bool operator>(const Joining& o) const { return at > o.at || (at == o.at && flow > o.flow); }
  };

  // Moves every active flow's bytes on to time `t`.
  void progress(double t);
  // Max-min fair rates of the active flows (progressive filling, as SimGrid's lmm solver does), and
  // the next end among them.
  void share();

  std::vector<FabricLink> links_;
  std::vector<Flow> flows_;
  std::vector<FlowId> free_;
  std::priority_queue<Joining, std::vector<Joining>, std::greater<>> joining_;
  std::vector<FlowId> active_;  // moving bytes
  double now_ = 0;
  std::size_t next_end_ = 0;    // index in active_ of the flow that ends first
  double next_end_at_ = std::numeric_limits<double>::infinity();
  // share()'s scratch, by link and by active flow
  std::vector<double> capacity_left_;
  std::vector<std::uint32_t> unfixed_users_;
  std::vector<double> unfixed_weight_;  // the sum of 1 / penalty over the link's unfixed flows
  std::vector<std::uint32_t> used_links_;     // crossed by an active flow
  std::vector<std::uint32_t> crowded_links_;  // crossed by more than one
  std::vector<std::uint8_t> saturated_;
  std::vector<std::uint32_t> unfixed_, still_unfixed_;
  std::vector<double> cap_;
};

}  // namespace rmai::sim
