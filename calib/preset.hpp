#pragma once
// The platform preset `rmai calibrate` writes: a YAML file the experiment loader reads like any
// preset in models/platforms/ (docs/interfaces.md, "rmai calibrate"), with every measured
// component written inline and every number under a comment saying how it was found.
#include <string>
#include <vector>

#include "calib/measurement.hpp"

namespace rmai::calib {

// A component of the platform: measured entries written inline, or a preset named.
struct Component {
  std::string name;         // nic, pcie, gpu, ...
  std::string description;  // inline: the component's description value
  Entries entries;          // inline when not empty
  std::string preset;       // otherwise: the preset's name
  std::string comment;      // why that preset, or more about the inline one (a line per '\n')
};

struct Preset {
  std::vector<std::string> header;  // comment lines at the top
  std::string description;
  Entries top;                      // the platform's own values (memory_servers, server_memory)
  std::vector<Component> components;
};

// The YAML text. Throws std::invalid_argument when a value is not finite or is negative (a probe
// that went wrong must not become a preset).
std::string render(const Preset& preset);

}  // namespace rmai::calib
