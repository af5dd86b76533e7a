#include "sim/fabric.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace rmai::sim {

namespace {
constexpr double kNever = std::numeric_limits<double>::infinity();
}

Fabric::Fabric(std::vector<FabricLink> links)
    : links_(std::move(links)),
      capacity_left_(links_.size()),
      unfixed_users_(links_.size()),
      unfixed_weight_(links_.size()),
      saturated_(links_.size()) {}

Fabric::FlowId Fabric::start(double at, double latency, double bytes, std::span<const std::uint32_t> links) {
  if (at < now_) throw std::logic_error("a transfer issued before the fabric's clock");
  FlowId id;
  if (free_.empty()) {
    id = static_cast<FlowId>(flows_.size());
    flows_.emplace_back();
  } else {
    id = free_.back();
    free_.pop_back();
  }
  Flow& flow = flows_[id];
  flow.shared_links.clear();
  flow.cap = kNever;
  for (const std::uint32_t l : links)
    if (links_.at(l).per_flow)
      flow.cap = std::min(flow.cap, links_[l].bandwidth);
    else
      flow.shared_links.push_back(l);
  flow.penalty = latency > 0 ? latency : 1.0;
  flow.weight = 1 / flow.penalty;
  flow.remaining = bytes;
  flow.rate = flow.end = 0;
  flow.ended = false;
  joining_.push({at + latency, id});
  return id;
}

double Fabric::finish(FlowId flow) {
  if (!flows_[flow].ended) throw std::logic_error("finish() of a flow in flight");
  free_.push_back(flow);
  return flows_[flow].end;
}

Fabric::FlowId Fabric::advance() {
  for (;;) {
    const double join_at = joining_.empty() ? kNever : joining_.top().at;
    if (!active_.empty() && next_end_at_ <= join_at) {
      progress(next_end_at_);
      const FlowId id = active_[next_end_];
      flows_[id].remaining = 0;
      flows_[id].ended = true;
      flows_[id].end = now_;
      active_[next_end_] = active_.back();
      active_.pop_back();
      share();
      return id;
    }
    if (joining_.empty()) throw std::logic_error("advance() of an idle fabric");
    const Joining next = joining_.top();
    joining_.pop();
    progress(next.at);
    Flow& flow = flows_[next.flow];
    if (flow.remaining <= 0) {  // no bytes: it ends with its latency, sharing nothing
      flow.ended = true;
      flow.end = now_;
      return next.flow;
    }
    active_.push_back(next.flow);
    share();
  }
}

void Fabric::progress(double t) {
  if (const double dt = t - now_; dt > 0)
    for (const FlowId id : active_) flows_[id].remaining -= flows_[id].rate * dt;
  now_ = std::max(now_, t);
}

void Fabric::share() {
  // Each link's capacity and the weights of its users.
  for (const FlowId id : active_)
    for (const std::uint32_t l : flows_[id].shared_links) {
      if (unfixed_users_[l]++ == 0) {
        capacity_left_[l] = links_[l].bandwidth;
        unfixed_weight_[l] = 0;
        used_links_.push_back(l);
      }
      unfixed_weight_[l] += flows_[id].weight;
    }
  // A link that only one flow crosses binds it as a cap would: only the crowded ones remain links.
  for (const std::uint32_t l : used_links_)
    if (unfixed_users_[l] > 1) crowded_links_.push_back(l);
  cap_.resize(active_.size());
  unfixed_.resize(active_.size());
  for (std::size_t i = 0; i < active_.size(); ++i) {
    const Flow& flow = flows_[active_[i]];
    cap_[i] = flow.cap;
    for (const std::uint32_t l : flow.shared_links)
      if (unfixed_users_[l] == 1) cap_[i] = std::min(cap_[i], links_[l].bandwidth);
    unfixed_[i] = static_cast<std::uint32_t>(i);
  }
  // Progressive filling: a flow's rate is level / penalty. The lowest of the crowded links' levels
  // (what is left over the weights of the flows not fixed yet) and the flows' caps fixes the flows
  // it binds (those crossing a link whose level it is, those capped at it); the rest share what is
  // left, until every flow has its rate.
  while (!unfixed_.empty()) {
    double level = kNever;
    for (const std::uint32_t l : crowded_links_)
      if (unfixed_users_[l] > 0) level = std::min(level, capacity_left_[l] / unfixed_weight_[l]);
    for (const std::uint32_t i : unfixed_) level = std::min(level, cap_[i] * flows_[active_[i]].penalty);
    for (const std::uint32_t l : crowded_links_)
      saturated_[l] = unfixed_users_[l] > 0 && capacity_left_[l] / unfixed_weight_[l] <= level;
    still_unfixed_.clear();
    for (const std::uint32_t i : unfixed_) {
      Flow& flow = flows_[active_[i]];
      bool bound = cap_[i] * flow.penalty <= level;
      for (const std::uint32_t l : flow.shared_links) bound = bound || saturated_[l];
      if (!bound) {
        still_unfixed_.push_back(i);
        continue;
      }
      flow.rate = std::min(level * flow.weight, cap_[i]);
      for (const std::uint32_t l : flow.shared_links) {
        capacity_left_[l] = std::max(0.0, capacity_left_[l] - flow.rate);
        unfixed_weight_[l] -= flow.weight;
        --unfixed_users_[l];
      }
    }
    std::swap(unfixed_, still_unfixed_);
  }
  for (const std::uint32_t l : used_links_) {
    unfixed_users_[l] = 0;
    saturated_[l] = 0;
  }
  used_links_.clear();
  crowded_links_.clear();
  next_end_at_ = kNever;
  for (std::size_t i = 0; i < active_.size(); ++i) {
    const Flow& flow = flows_[active_[i]];
    const double end = now_ + std::max(0.0, flow.remaining) / flow.rate;
    if (end < next_end_at_) {
      next_end_at_ = end;
      next_end_ = i;
    }
  }
}

}  // namespace rmai::sim
