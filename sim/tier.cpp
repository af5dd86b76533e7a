#include "sim/tier.hpp"

namespace rmai::sim {

Transfer Transfer::stream(sg4::Host* from, sg4::Host* to, double bytes, std::uint64_t ops,
                          std::uint64_t queue_depth, double op_cost) {
  double return_trips = 0;
  if (queue_depth == 1 && ops > 1) {
    std::vector<sg4::Link*> links;
    double route_latency = 0;
    from->route_to(to, links, &route_latency);
    return_trips = double(ops - 1) * route_latency;
  }
  return {from, to, bytes, double(ceil_div(ops, queue_depth)) * op_cost + return_trips};
}

}  // namespace rmai::sim
