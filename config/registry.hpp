#pragma once
// A string-keyed factory: each implementation of an interface registers itself by name with one
// line (see RMAI_REGISTER), so YAML can select it and `rmai list` can show it.
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/tree.hpp"

namespace rmai {

template <class Base, class... Args>
class Registry {
 public:
  using Factory = std::function<std::unique_ptr<Base>(Args...)>;
  struct Entry {
    std::string description;
    Factory make;
  };

  static Registry& instance() {
    static Registry registry;
    return registry;
  }

  bool add(const std::string& name, std::string description, Factory make) {
    if (!entries_.emplace(name, Entry{std::move(description), std::move(make)}).second)
      throw std::logic_error("implementation registered twice: " + name);
    return true;
  }

  bool contains(const std::string& name) const { return entries_.count(name) != 0; }

  // Throws std::out_of_range for an unknown name; callers turn it into an InputError.
  std::unique_ptr<Base> make(const std::string& name, Args... args) const {
    return entries_.at(name).make(std::forward<Args>(args)...);
  }

  const std::map<std::string, Entry>& entries() const { return entries_; }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, entry] : entries_) out.push_back(name);
    return out;
  }

  // "a, b, c": for error messages that list the valid choices.
  std::string names_joined() const { return config::join(names()); }

 private:
  std::map<std::string, Entry> entries_;
};

}  // namespace rmai

#define RMAI_CONCAT_INNER(a, b) a##b
#define RMAI_CONCAT(a, b) RMAI_CONCAT_INNER(a, b)
// RMAI_REGISTER(RegistryType, "name", "what it does", factory-lambda)
#define RMAI_REGISTER(REGISTRY, NAME, DESCRIPTION, FACTORY) \
  static const bool RMAI_CONCAT(rmai_registered_, __LINE__) = REGISTRY::instance().add(NAME, DESCRIPTION, FACTORY)
