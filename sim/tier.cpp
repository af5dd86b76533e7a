#include "sim/tier.hpp"

namespace rmai::sim {

Transfer Transfer::stream(sg4::Host* from, sg4::Host* to, double bytes, std::uint64_t ops,
                          std::uint64_t queue_depth, double op_cost) {
  double route_latency = 0;  // needed only for the return trips at queue depth 1
  if (queue_depth == 1 && ops > 1) {
    std::vector<sg4::Link*> links;
    from->route_to(to, links, &route_latency);
  }
  return {from, to, bytes, stream_fixed_time(ops, queue_depth, op_cost, route_latency)};
}

}  // namespace rmai::sim
