#pragma once
// The simulated cluster, built in C++ from the platform preset: inference nodes (host CPU and DRAM,
// GPU behind PCIe, a CXL expander, an NVMe drive, an RDMA NIC), memory servers behind one switch,
// and a CXL memory pool whose ports every node reaches through a CXL switch. Every link's bandwidth
// and latency comes from the platform's hardware presets.
#include <simgrid/s4u.hpp>

#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sim/fabric.hpp"
#include "spec/experiment.hpp"

namespace rmai::sim {

namespace sg4 = simgrid::s4u;

struct NodeHosts {
  sg4::Host* host;  // CPU and host DRAM: where fetched pages land
  sg4::Host* gpu;   // HBM expert cache
  sg4::Host* cxl;   // the CXL expander's memory
  sg4::Host* nvme;  // the local drive
};

// A route as one transfer alone on it sees it (CM02 without cross traffic, sim/replay.hpp): it takes
// latency + bytes / bandwidth. `shared` when the routes of more than one node cross one of its links
// (a memory server's NIC, a CXL pool port), so that another node's transfer may share it.
struct Route {
  double latency = 0;    // the links' latencies, summed
  double bandwidth = 0;  // the smallest of the links' bandwidths
  bool shared = false;
  std::vector<std::uint32_t> links;  // indices into Cluster::links(), for the fast path's Fabric
};

class Cluster {
 public:
  // Builds the platform in the running engine (call once, before any actor starts).
  Cluster(const spec::Platform& platform, std::uint32_t nodes);

  const NodeHosts& node(std::uint32_t index) const { return nodes_.at(index); }
  sg4::Host* server(std::uint32_t index) const { return servers_.at(index); }
  std::uint32_t servers() const { return static_cast<std::uint32_t>(servers_.size()); }
  // The CXL pool's ports: port p reaches every node's GPU through p's link and the node's own port.
  sg4::Host* pool_port(std::uint32_t index) const { return pool_ports_.at(index); }
  std::uint32_t pool_ports() const { return static_cast<std::uint32_t>(pool_ports_.size()); }
  // The route a transfer from `from` to `to` takes (one the platform has).
  const Route& route(const sg4::Host* from, const sg4::Host* to) const { return routes_.at({from, to}); }
  // Every link of the platform as the fast path's Fabric shares it (Route::links index it).
  const std::vector<FabricLink>& links() const { return links_; }

 private:
  struct HostPairHash {
    std::size_t operator()(const std::pair<const sg4::Host*, const sg4::Host*>& p) const {
      return std::hash<const void*>()(p.first) * 31 + std::hash<const void*>()(p.second);
    }
  };
  // Adds the route (both ways) to the zone and to routes_, on behalf of `node`.
  void add_route(sg4::NetZone* zone, std::uint32_t node, sg4::Host* from, sg4::Host* to,
                 std::vector<sg4::Link*> links);

  std::unordered_map<std::pair<const sg4::Host*, const sg4::Host*>, Route, HostPairHash> routes_;
  // While building: each route's links, and the nodes whose routes cross each link.
  std::unordered_map<std::pair<const sg4::Host*, const sg4::Host*>, std::vector<sg4::Link*>, HostPairHash> route_links_;
  std::unordered_map<const sg4::Link*, std::vector<std::uint32_t>> link_nodes_;
  std::unordered_map<const sg4::Link*, std::uint32_t> link_index_;
  std::vector<FabricLink> links_;

  std::vector<NodeHosts> nodes_;
  std::vector<sg4::Host*> servers_;
  std::vector<sg4::Host*> pool_ports_;
};

}  // namespace rmai::sim
