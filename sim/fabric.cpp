#include "sim/fabric.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace rmai::sim {

namespace {
constexpr double kNever = std::numeric_limits<double>::infinity();
// CM02's sharing penalty: the route's latency, 1 for a route without any.
double sharing_penalty(double latency) { return latency > 0 ? latency : 1.0; }
}  // namespace

Fabric::Fabric(std::vector<FabricLink> links)
    : links_(std::move(links)),
      link_users_(links_.size()),
      capacity_left_(links_.size()),
      unfixed_users_(links_.size()),
      unfixed_weight_(links_.size()),
      least_penalty_(links_.size()),
      saturated_(links_.size()) {}

Fabric::ClassId Fabric::class_of(std::span<const std::uint32_t> links, double latency, bool own_links_alone) {
  if (own_links_alone)
    if (const auto known = class_of_route_.find(links.data()); known != class_of_route_.end()) {
      const Class& c = classes_[known->second];
      if (c.penalty == sharing_penalty(latency)) return known->second;
    }
  std::vector<std::uint32_t> constraints;
  double cap = kNever;
  for (const std::uint32_t l : links) {
    const FabricLink& link = links_.at(l);
    if (own_links_alone && (link.per_flow || !link.crossed_by_nodes))
      cap = std::min(cap, link.bandwidth);
    else
      constraints.push_back(l);
  }
  const double penalty = sharing_penalty(latency);
  auto make = [&](bool reusable) {
    ClassId id;
    if (!reusable && !free_classes_.empty()) {
      id = free_classes_.back();
      free_classes_.pop_back();
    } else {
      id = static_cast<ClassId>(classes_.size());
      classes_.emplace_back();
    }
    Class& c = classes_[id];
    c.links = constraints;
    c.penalty = penalty;
    c.weight = 1 / penalty;
    c.cap = cap;
    c.reusable = reusable;
    return id;
  };
  // A flow that shares its node's own links with another of its node's flows is a class of its own:
  // those links are constraints of its own, not the same cap for all.
  if (!own_links_alone) return make(false);
  ClassKey key{constraints, penalty, cap};
  auto found = reusable_.find(key);
  if (found == reusable_.end()) found = reusable_.emplace(std::move(key), make(true)).first;
  class_of_route_[links.data()] = found->second;
  return found->second;
}

Fabric::FlowId Fabric::start(double at, double latency, double bytes, std::span<const std::uint32_t> links,
                             bool own_links_alone) {
  if (at < now_) throw std::logic_error("a transfer issued before the fabric's clock");
  FlowId id;
  if (free_flows_.empty()) {
    id = static_cast<FlowId>(flows_.size());
    flows_.emplace_back();
  } else {
    id = free_flows_.back();
    free_flows_.pop_back();
  }
  flows_[id] = {class_of(links, latency, own_links_alone), bytes, 0, false};
  joining_.push({at + latency, id});
  return id;
}

double Fabric::finish(FlowId flow) {
  if (!flows_[flow].ended) throw std::logic_error("finish() of a flow in flight or finished");
  flows_[flow].ended = false;  // a second finish() must not free it twice
  free_flows_.push_back(flow);
  return flows_[flow].end;
}

void Fabric::deactivate(ClassId id) {
  Class& c = classes_[id];
  const ClassId last = active_.back();
  active_[c.active_at] = last;
  classes_[last].active_at = c.active_at;
  active_.pop_back();
  for (const std::uint32_t l : c.links) {
    auto& users = link_users_[l];
    *std::find(users.begin(), users.end(), id) = users.back();
    users.pop_back();
  }
  c.service = 0;  // a class that starts again from 0 keeps its dates exact
  if (!c.reusable) free_classes_.push_back(id);
}

Fabric::FlowId Fabric::advance() {
  for (;;) {
    const double join_at = joining_.empty() ? kNever : joining_.top().at;
    if (!active_.empty() && next_end_at_ <= join_at) {
      progress(next_end_at_);
      Class& c = classes_[next_class_];
      const FlowId id = c.ending.top().flow;
      c.ending.pop();
      flows_[id].ended = true;
      flows_[id].end = now_;
      const ClassId ended = next_class_;
      if (--c.members == 0) deactivate(ended);
      share(ended);
      return id;
    }
    if (joining_.empty()) throw std::logic_error("advance() of an idle fabric");
    const Joining next = joining_.top();
    joining_.pop();
    progress(next.at);
    Flow& flow = flows_[next.flow];
    if (flow.bytes <= 0) {  // no bytes: it ends with its latency, sharing nothing
      flow.ended = true;
      flow.end = now_;
      if (const Class& c = classes_[flow.cls]; !c.reusable && c.members == 0) free_classes_.push_back(flow.cls);
      return next.flow;
    }
    Class& c = classes_[flow.cls];
    if (c.members++ == 0) {
      c.active_at = active_.size();
      active_.push_back(flow.cls);
      for (const std::uint32_t l : c.links) link_users_[l].push_back(flow.cls);
    }
    c.ending.push({c.service + flow.bytes, next.flow});
    share(flow.cls);
  }
}

void Fabric::progress(double t) {
  if (const double dt = t - now_; dt > 0)
    for (const ClassId id : active_) classes_[id].service += classes_[id].rate * dt;
  now_ = std::max(now_, t);
}

void Fabric::connected_classes(ClassId changed) {
  // The active classes that reach `changed` through links they share (it may have just left its
  // links: those that remain on them count), by a search over the links' users.
  component_.clear();
  // Most often the class is alone on its links (one class for the like nodes of one server).
  const bool alone = std::all_of(classes_[changed].links.begin(), classes_[changed].links.end(), [&](std::uint32_t l) {
    return link_users_[l].empty() || (link_users_[l].size() == 1 && link_users_[l].front() == changed);
  });
  if (alone) {
    if (classes_[changed].members > 0) component_.push_back(changed);
    return;
  }
  ++search_;
  if (visited_.size() < classes_.size()) visited_.resize(classes_.size(), 0);
  const auto visit_users = [&](const Class& c) {
    for (const std::uint32_t l : c.links)
      for (const ClassId u : link_users_[l])
        if (visited_[u] != search_) {
          visited_[u] = search_;
          component_.push_back(u);
        }
  };
  if (classes_[changed].members > 0) {
    visited_[changed] = search_;
    component_.push_back(changed);
  }
  visit_users(classes_[changed]);
  for (std::size_t i = 0; i < component_.size(); ++i) visit_users(classes_[component_[i]]);
  // In the order of active_, so that fill() sums each link's users in the order a filling over all
  // active classes would: the same bits.
  std::sort(component_.begin(), component_.end(),
            [this](ClassId a, ClassId b) { return classes_[a].active_at < classes_[b].active_at; });
}

void Fabric::share(ClassId changed) {
  // Only the classes connected to the one that changed can change their rates: the others' links
  // see the same flows. The filling below gives each of them what it would over all classes (a
  // level of another component fixes none of these), to the bit.
  connected_classes(changed);
  if (component_.size() == 1)
    share_alone(classes_[component_.front()]);
  else
    fill();
  next_end_at_ = kNever;
  for (const ClassId id : active_) {
    const Class& c = classes_[id];
    const double end = now_ + std::max(0.0, c.ending.top().service - c.service) / c.rate;
    if (end < next_end_at_) {
      next_end_at_ = end;
      next_class_ = id;
    }
  }
}

void Fabric::share_alone(Class& c) {
  // fill() for one class, the same operations on the same values: its members alone cross its
  // links, which bind them as caps when it has one member and as links crowded by its members else.
  double cap = c.cap, level = kNever;
  for (const std::uint32_t l : c.links) {
    const FabricLink& link = links_[l];
    if (c.members == 1)
      cap = std::min(cap, link.bandwidth);
    else
      level = std::min(level, link.per_flow ? link.bandwidth * c.penalty : link.bandwidth / (c.members * c.weight));
  }
  level = std::min(level, cap * c.penalty);
  c.rate = std::min(level * c.weight, cap);
}

void Fabric::fill() {
  // Each link's capacity and users, and the weights of a shared link's users.
  for (const ClassId id : component_) {
    const Class& c = classes_[id];
    for (const std::uint32_t l : c.links) {
      if (unfixed_users_[l] == 0) {
        capacity_left_[l] = links_[l].bandwidth;
        unfixed_weight_[l] = 0;
        used_links_.push_back(l);
      }
      unfixed_users_[l] += c.members;
      unfixed_weight_[l] += c.members * c.weight;
    }
  }
  // A link that only one flow crosses binds it as a cap would: only the crowded ones remain links.
  bool crowded_fatpipe = false;  // only then does a FATPIPE link need its least penalty
  for (const std::uint32_t l : used_links_)
    if (unfixed_users_[l] > 1) {
      crowded_links_.push_back(l);
      crowded_fatpipe = crowded_fatpipe || links_[l].per_flow;
    }
  cap_.resize(component_.size());
  unfixed_.resize(component_.size());
  for (std::size_t i = 0; i < component_.size(); ++i) {
    const Class& c = classes_[component_[i]];
    cap_[i] = c.cap;
    for (const std::uint32_t l : c.links)
      if (unfixed_users_[l] == 1) cap_[i] = std::min(cap_[i], links_[l].bandwidth);
    unfixed_[i] = static_cast<std::uint32_t>(i);
  }
  // Progressive filling, as SimGrid's lmm solver does it: a flow's rate is level / penalty. A
  // shared link's level is what is left of it over the weights of its flows not fixed yet; a
  // FATPIPE link's is its bandwidth times the smallest penalty among them (each flow may take all
  // of it, but one of a longer route gets it in proportion). The lowest of the crowded links'
  // levels and the flows' caps fixes the flows it binds (those crossing a link whose level it is,
  // those capped at it); the rest share what is left, until every flow has its rate.
  const auto level_of = [&](std::uint32_t l) {
    return links_[l].per_flow ? links_[l].bandwidth * least_penalty_[l] : capacity_left_[l] / unfixed_weight_[l];
  };
  while (!unfixed_.empty()) {
    if (crowded_fatpipe) {
      for (const std::uint32_t l : crowded_links_) least_penalty_[l] = kNever;
      for (const std::uint32_t i : unfixed_)
        for (const std::uint32_t l : classes_[component_[i]].links)
          if (links_[l].per_flow) least_penalty_[l] = std::min(least_penalty_[l], classes_[component_[i]].penalty);
    }
    double level = kNever;
    for (const std::uint32_t l : crowded_links_)
      if (unfixed_users_[l] > 0) level = std::min(level, level_of(l));
    for (const std::uint32_t i : unfixed_) level = std::min(level, cap_[i] * classes_[component_[i]].penalty);
    for (const std::uint32_t l : crowded_links_) saturated_[l] = unfixed_users_[l] > 0 && level_of(l) <= level;
    still_unfixed_.clear();
    for (const std::uint32_t i : unfixed_) {
      Class& c = classes_[component_[i]];
      bool bound = cap_[i] * c.penalty <= level;
      for (const std::uint32_t l : c.links) bound = bound || saturated_[l];
      if (!bound) {
        still_unfixed_.push_back(i);
        continue;
      }
      c.rate = std::min(level * c.weight, cap_[i]);
      for (const std::uint32_t l : c.links) {
        if (!links_[l].per_flow) {
          capacity_left_[l] = std::max(0.0, capacity_left_[l] - c.members * c.rate);
          unfixed_weight_[l] -= c.members * c.weight;
        }
        unfixed_users_[l] -= c.members;
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
}

}  // namespace rmai::sim
