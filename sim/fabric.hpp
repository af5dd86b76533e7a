#pragma once
// The fast path's own fluid model of the transfers that can share a link: a memory server's NIC or
// a pool port that several nodes cross, a node's DRAM under overlapping chunks. It shares links as
// SimGrid's CM02 does as default_simgrid_options() configures it (no cross traffic, no TCP window,
// no bandwidth or latency factors): a transfer waits its route's latency, taking no bandwidth, then
// its bytes flow at their weighted max-min fair share, a FATPIPE link capping each flow on its own
// (flows of a longer route than another on the same FATPIPE link get a proportionally lower cap, as
// SimGrid's solver gives them).
// As in CM02, a flow's sharing penalty is its route's latency (1 for a route without any): on a
// saturated link, flows get bandwidth in inverse proportion to their latency, as TCP flows of
// different round trips do. Dates are kept as SimGrid's are, start + latency, then + bytes / rate
// for a flow alone, so a transfer alone on its route ends where SimGrid ends it.
//
// Without SimGrid, and without a cost per flow in flight: flows that the max-min solution cannot
// tell apart (the same links that several nodes cross, the same penalty, the same cap from the rest
// of the route) form one class, whose members always move at one rate. A class keeps the bytes each
// of its members has moved since it was last empty (its service) and a heap of the service at which
// each member ends, as in processor sharing; the rates are solved over the classes in flight
// (docs/architecture.md, "The fast path").
#include <cstdint>
#include <limits>
#include <map>
#include <queue>
#include <span>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace rmai::sim {

struct FabricLink {
  double bandwidth = 0;   // bytes/s
  bool per_flow = false;  // a FATPIPE link: each flow may take all of it (a per-flow cap)
  bool crossed_by_nodes = false;  // on the routes of several nodes (else one node's own)
};

class Fabric {
 public:
  // A flow in flight, until finish() is called for it (ids are reused after).
  using FlowId = std::uint32_t;

  explicit Fabric(std::vector<FabricLink> links);

  // A transfer of `bytes` over `links` (indices into the links given above; their storage must
  // outlive the fabric, as a route's does: it identifies the route), issued at `at` >= now():
  // after `latency`, its bytes flow. `own_links_alone`: the caller guarantees that no
  // other flow crosses the route's links that only its node's routes cross while this one is in
  // flight (one transfer of a node at a time), so that they bound it as a cap would.
  FlowId start(double at, double latency, double bytes, std::span<const std::uint32_t> links, bool own_links_alone);
  // Whether no flow is in flight.
  bool idle() const { return joining_.empty() && active_.empty(); }
  // Moves time on to the next end of a flow and returns that flow; now() is its end. Not idle().
  FlowId advance();
  bool ended(FlowId flow) const { return flows_[flow].ended; }
  // The flow's end, once ended(); its id is free again.
  double finish(FlowId flow);
  double now() const { return now_; }

 private:
  using ClassId = std::uint32_t;
  struct Ending {  // a member of a class, ending when the class's service reaches `service`
    double service;
    FlowId flow;
    bool operator>(const Ending& o) const { return service > o.service || (service == o.service && flow > o.flow); }
  };
  struct Class {
    std::vector<std::uint32_t> links;  // the links it is constrained by (not per-flow)
    double penalty = 1;                // SimGrid's sharing penalty (above)
    double weight = 1;                 // 1 / penalty
    double cap = 0;                    // from per-flow links and, when alone, the node's own links
    bool reusable = false;             // kept for later flows of the same kind (else one flow's)
    std::uint32_t members = 0;         // in flight, moving bytes
    double service = 0;                // bytes each member moved since the class was last empty
    double rate = 0;                   // bytes/s of each member
    std::priority_queue<Ending, std::vector<Ending>, std::greater<>> ending;
    std::size_t active_at = 0;         // its index in active_, while members > 0
  };
  struct Flow {
    ClassId cls = 0;
    double bytes = 0;
    double end = 0;
    bool ended = false;
  };
  struct Joining {  // a flow in its latency, until `at`
    double at;
    FlowId flow;
    bool operator>(const Joining& o) const { return at > o.at || (at == o.at && flow > o.flow); }
  };
  using ClassKey = std::tuple<std::vector<std::uint32_t>, double, double>;  // links, penalty, cap

  ClassId class_of(std::span<const std::uint32_t> links, double latency, bool own_links_alone);
  // Moves every active class's service on to time `t`.
  void progress(double t);
  // Max-min fair rates of the active classes connected to `changed` (progressive filling, as
  // SimGrid's lmm solver does for their flows), and the next end among all.
  void share(ClassId changed);
  void connected_classes(ClassId changed);  // into component_
  void fill();                   // the rates of component_'s classes
  void share_alone(Class& cls);  // the same for a component of one class
  void deactivate(ClassId cls);

  std::vector<FabricLink> links_;
  std::vector<Flow> flows_;
  std::vector<FlowId> free_flows_;
  std::vector<Class> classes_;
  std::vector<ClassId> free_classes_;  // one flow's classes, ended
  std::map<ClassKey, ClassId> reusable_;
  // The class of a route given before (by its links' storage: a route's links live as long as the
  // fabric), so that a flow starts without building its class's key.
  std::unordered_map<const std::uint32_t*, ClassId> class_of_route_;
  std::priority_queue<Joining, std::vector<Joining>, std::greater<>> joining_;
  std::vector<ClassId> active_;  // classes with members moving bytes
  std::vector<std::vector<ClassId>> link_users_;  // by link: the active classes it constrains
  double now_ = 0;
  ClassId next_class_ = 0;  // the class whose first member ends first
  double next_end_at_ = std::numeric_limits<double>::infinity();
  // share()'s scratch, by link and by active class
  std::vector<double> capacity_left_;
  std::vector<std::uint32_t> unfixed_users_;
  std::vector<double> unfixed_weight_;        // the sum of 1 / penalty over the link's unfixed flows
  std::vector<double> least_penalty_;         // a FATPIPE link's smallest penalty among them
  std::vector<std::uint32_t> used_links_;     // crossed by an active flow
  std::vector<std::uint32_t> crowded_links_;  // crossed by more than one
  std::vector<std::uint8_t> saturated_;
  std::vector<ClassId> component_;          // the classes share() fills
  std::vector<std::uint64_t> visited_;      // by class: the search that last reached it
  std::uint64_t search_ = 0;
  std::vector<std::uint32_t> unfixed_, still_unfixed_;  // indices into component_
  std::vector<double> cap_;
};

}  // namespace rmai::sim
