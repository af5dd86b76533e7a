#pragma once
// The simulated cluster, built in C++ from the platform preset: inference nodes (host CPU and DRAM,
// GPU behind PCIe, a CXL expander, an NVMe drive, an RDMA NIC), memory servers behind one switch,
// and a CXL memory pool whose ports every node reaches through a CXL switch. Every link's bandwidth
// and latency comes from the platform's hardware presets.
#include <simgrid/s4u.hpp>

#include <cstdint>
#include <vector>

#include "spec/experiment.hpp"

namespace rmai::sim {

namespace sg4 = simgrid::s4u;

struct NodeHosts {
  sg4::Host* host;  // CPU and host DRAM: where fetched pages land
  sg4::Host* gpu;   // HBM expert cache
  sg4::Host* cxl;   // the CXL expander's memory
  sg4::Host* nvme;  // the local drive
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

 private:
  std::vector<NodeHosts> nodes_;
  std::vector<sg4::Host*> servers_;
  std::vector<sg4::Host*> pool_ports_;
};

}  // namespace rmai::sim
