#pragma once
// The fixed costs of a stream of reads (Transfer::stream, sim/tier.hpp), SimGrid-free: rmai
// calibrate subtracts from a probed region fault what the simulator charges its transfer, and must
// charge it the same way (calib/nic.cpp).
#include <cmath>
#include <cstdint>

namespace rmai::sim {

// ceil(a / b) for positive counts.
inline std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }
// Number of pieces of `piece` bytes that cover `bytes`.
inline std::uint64_t pieces(double bytes, double piece) {
  return static_cast<std::uint64_t>(std::ceil(bytes / piece));
}

// Fixed cost of one one-sided RDMA read: posting and completing it, plus the request's trip to the
// server (the data's trip back is the route latency of the flow itself).
inline double rdma_read_cost(double op_overhead, double latency) { return op_overhead + latency; }

// `ops` reads of equal size, `queue_depth` in flight, each paying `op_cost` before its data moves,
// on a route of `route_latency`: the rounds of fixed costs, plus at queue depth 1 every read's but
// the last's return trip (the last one's is the flow's own). The time before the stream's one flow
// starts; on an idle route the stream takes this + route_latency + bytes / route bandwidth.
inline double stream_fixed_time(std::uint64_t ops, std::uint64_t queue_depth, double op_cost, double route_latency) {
  const double return_trips = queue_depth == 1 && ops > 1 ? double(ops - 1) * route_latency : 0;
  return double(ceil_div(ops, queue_depth)) * op_cost + return_trips;
}

}  // namespace rmai::sim
