#include "emul/store.hpp"

namespace rmai::emul {

Counters& Counters::operator+=(const Counters& o) {
  faults += o.faults;
  pages_mapped += o.pages_mapped;
  bytes_fetched += o.bytes_fetched;
  transitions += o.transitions;
  handler_calls += o.handler_calls;
  fault_latency_s.insert(fault_latency_s.end(), o.fault_latency_s.begin(), o.fault_latency_s.end());
  return *this;
}

}  // namespace rmai::emul
