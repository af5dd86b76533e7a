#include "sim/tier.hpp"

namespace rmai::sim {

Transfer Transfer::stream(sg4::Host* from, sg4::Host* to, double bytes, std::uint64_t ops,
                          std::uint64_t queue_depth, double op_cost) {
  return {from, to, bytes, double(ceil_div(ops, queue_depth)) * op_cost};
}

}  // namespace rmai::sim
