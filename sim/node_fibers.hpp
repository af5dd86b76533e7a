#pragma once
// The fast path's scheduler of several nodes (docs/architecture.md, "The fast path"): each node's
// replay runs as a fiber on this one thread, on its own clock, until it waits for a transfer of the
// Fabric (one that other nodes' transfers can share). Once every node waits, no node can issue a
// transfer earlier than the fabric's next event any more, so the fabric moves on to the next end
// of a flow and wakes the node that waits for it. Nodes therefore meet only where they share a
// link, and the dates are those of a discrete-event run. Fibers (Boost.Context) switch in tens of
// nanoseconds, where a SimGrid activity costs microseconds.
#include <cstdint>
#include <functional>
#include <vector>

#include "sim/fabric.hpp"

namespace rmai::sim {

class NodeFibers {
 public:
  explicit NodeFibers(Fabric& fabric) : fabric_(fabric) {}

  // A node's body.
  void add(std::function<void()> body) { bodies_.push_back(std::move(body)); }
  // Runs every body to its end, in the order added where several can run. A body that throws ends
  // there, the others run on (its transfers in flight keep their share until they end), and the
  // first node's exception is thrown once all have ended, as simulate() does with its SimGrid actors.
  void run();
  // From a body: returns once `flow` has ended, with its end date (the id is free again).
  double wait(Fabric::FlowId flow);

  Fabric& fabric() { return fabric_; }

 private:
  Fabric& fabric_;
  std::vector<std::function<void()>> bodies_;
  struct State;
  State* state_ = nullptr;  // while run() runs
};

}  // namespace rmai::sim
