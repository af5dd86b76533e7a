#include "sim/cluster.hpp"

#include <algorithm>
#include <initializer_list>
#include <string>
#include <vector>

namespace rmai::sim {
namespace {

// Hosts only terminate transfers here; their CPU speed is never used (CPU costs are timed
// directly), so any positive value will do.
constexpr double kUnusedHostSpeed = 1e9;

sg4::Link* make_link(sg4::NetZone* zone, const std::string& name, double bandwidth, double latency) {
  return zone->create_link(name, bandwidth)->set_latency(latency)->seal();
}

// A link of the node whose preset may cap what one transfer gets (spec::Link::flow_bandwidth):
// then a FATPIPE link of that rate rides beside it on every route. A fatpipe gives each flow its
// whole bandwidth, so a flow through both gets min(cap, its fair share of the shared link): one
// thread's copy is bound by its core, several share the memory. (SimGrid 3.32 has no per-comm rate
// cap for host-to-host comms: see sim/tier.hpp.)
std::vector<sg4::Link*> make_links(sg4::NetZone* zone, const std::string& name, const spec::Link& link) {
  std::vector<sg4::Link*> links{make_link(zone, name, link.bandwidth, link.latency)};
  if (link.flow_bandwidth > 0)
    links.push_back(zone->create_link(name + "/flow", link.flow_bandwidth)
                        ->set_sharing_policy(sg4::Link::SharingPolicy::FATPIPE)
                        ->seal());
  return links;
}

// The links of a route, in order.
std::vector<sg4::Link*> join(std::initializer_list<std::vector<sg4::Link*>> parts) {
  std::vector<sg4::Link*> links;
  for (const auto& part : parts) links.insert(links.end(), part.begin(), part.end());
  return links;
}

}  // namespace

void Cluster::add_route(sg4::NetZone* zone, std::uint32_t node, sg4::Host* from, sg4::Host* to,
                        std::vector<sg4::Link*> links) {
  std::vector<sg4::LinkInRoute> route;
  Route closed_form{0, links.front()->get_bandwidth(), false, {}};
  for (auto* link : links) {
    route.emplace_back(link);
    closed_form.latency += link->get_latency();
    closed_form.bandwidth = std::min(closed_form.bandwidth, link->get_bandwidth());
    auto& users = link_nodes_[link];
    if (std::find(users.begin(), users.end(), node) == users.end()) users.push_back(node);
    const auto [index, added] = link_index_.try_emplace(link, static_cast<std::uint32_t>(links_.size()));
    if (added)
      links_.push_back({link->get_bandwidth(), link->get_sharing_policy() == sg4::Link::SharingPolicy::FATPIPE, false});
    closed_form.links.push_back(index->second);
  }
  zone->add_route(from->get_netpoint(), to->get_netpoint(), nullptr, nullptr, route, true);
  routes_[{from, to}] = routes_[{to, from}] = closed_form;
  route_links_[{from, to}] = route_links_[{to, from}] = links;
}

Cluster::Cluster(const spec::Platform& p, std::uint32_t nodes) {
  auto* zone = sg4::create_full_zone("cluster");
  std::vector<sg4::Link*> server_nics;
  for (std::uint32_t s = 0; s < p.memory_servers; ++s) {
    const std::string name = "server-" + std::to_string(s);
    servers_.push_back(zone->create_host(name, kUnusedHostSpeed));
    // Half the NIC-to-NIC latency on each side, so a node-server route sums to nic.latency.
    server_nics.push_back(make_link(zone, name + "/nic", p.nic.bandwidth, p.nic.latency / 2));
  }
  std::vector<sg4::Link*> pool_links;
  for (std::uint32_t port = 0; port < p.cxl_pool.ports; ++port) {
    const std::string name = "cxl-pool/port-" + std::to_string(port);
    pool_ports_.push_back(zone->create_host(name, kUnusedHostSpeed));
    pool_links.push_back(make_link(zone, name, p.cxl_pool.bandwidth, p.cxl_pool.latency));
  }
  for (std::uint32_t i = 0; i < nodes; ++i) {
    const std::string name = "node-" + std::to_string(i);
    NodeHosts h{zone->create_host(name, kUnusedHostSpeed), zone->create_host(name + "/gpu", kUnusedHostSpeed),
                zone->create_host(name + "/cxl", kUnusedHostSpeed), zone->create_host(name + "/nvme", kUnusedHostSpeed)};
    const auto dram = make_links(zone, name + "/dram", p.dram);
    const auto pcie = make_links(zone, name + "/pcie", p.pcie);
    auto* cxl = make_link(zone, name + "/cxl", p.cxl.bandwidth, p.cxl.latency);
    auto* nvme = make_link(zone, name + "/nvme", p.nvme.bandwidth, 0);  // per-read latency: see tiers
    auto* nic = make_link(zone, name + "/nic", p.nic.bandwidth, p.nic.latency / 2);
    add_route(zone, i, h.host, h.gpu, join({dram, pcie}));
    add_route(zone, i, h.cxl, h.gpu, join({{cxl}, pcie}));
    add_route(zone, i, h.nvme, h.host, join({{nvme}, dram}));
    for (std::uint32_t s = 0; s < p.memory_servers; ++s)
      add_route(zone, i, servers_[s], h.host, join({{server_nics[s], nic}, dram}));
    // The node's own switch port to the pool: as fast as a pool port, its latency counted once.
    auto* pool_port = make_link(zone, name + "/cxl-pool", p.cxl_pool.bandwidth, 0);
    for (std::uint32_t port = 0; port < p.cxl_pool.ports; ++port)
      add_route(zone, i, pool_ports_[port], h.gpu, join({{pool_links[port], pool_port}, pcie}));
    nodes_.push_back(h);
  }
  zone->seal();
  // A route is shared when one of its links is on the routes of several nodes: the servers' NICs and
  // the pool's ports, once there are two nodes.
  for (auto& [hosts, route] : routes_)
    for (const auto* link : route_links_.at(hosts))
      route.shared = route.shared || link_nodes_.at(link).size() > 1;
  for (const auto& [link, index] : link_index_) links_[index].crossed_by_nodes = link_nodes_.at(link).size() > 1;
  route_links_.clear();
  link_nodes_.clear();
  link_index_.clear();

}

}  // namespace rmai::sim
