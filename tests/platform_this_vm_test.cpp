// The `this-vm` platform (models/platforms/this-vm.yaml): what `rmai validate` gives the simulator so
// that it describes the machine the emulator runs on, as `rmai calibrate --disk /var/tmp` wrote it.
// Loaded the way validate loads it (the validation experiment with --set mode=sim --set
// experts=emulated --set platform=this-vm): the measured components are inline, every number has
// its source beside it and is the one the file says, within its schema's bounds, and the experts
// are the emulator's scaled ones.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "config/tree.hpp"
#include "config/errors.hpp"
#include "spec/schemas.hpp"
#include "spec/experiment.hpp"

namespace rmai {
namespace {

using testing::kSourceDir;
namespace fs = std::filesystem;

const fs::path kValidate = kSourceDir / "experiments" / "validate.yaml";
const fs::path kThisVm = kSourceDir / "models" / "platforms" / "this-vm.yaml";
const std::vector<std::string> kAsValidate{"mode=sim", "experts=emulated", "platform=this-vm"};
const char* const kMeasured[] = {"nic", "pcie", "dram", "nvme", "os"};

std::string text_of(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(PlatformThisVm, IsWhatRmaiCalibrateWrote) {
  const std::string text = text_of(kThisVm);
  EXPECT_THAT(text, ::testing::StartsWith("# Platform preset written by `rmai calibrate`"));
  EXPECT_THAT(text, ::testing::HasSubstr("rmai calibrate --disk /var/tmp -o models/platforms/this-vm.yaml"));
  const auto e = spec::load_experiment(kValidate, kAsValidate);
  EXPECT_EQ(e.platform.preset, "this-vm");
  const auto& platform = e.values.child("platform");
  for (const char* component : kMeasured) EXPECT_EQ(platform.child(component).preset(), "") << component << " is measured, inline";
  EXPECT_EQ(platform.child("gpu").preset(), "emulated-none");
  EXPECT_EQ(platform.child("cxl").preset(), "cxl-expander-x8");
  // One memd on loopback holding the pool in this VM's memory.
  EXPECT_EQ(e.platform.memory_servers, 1u);
  EXPECT_GT(e.platform.server_memory, 1e9);
}

TEST(PlatformThisVm, EveryNumberHasItsSourceAndIsTheFilesOwn) {
  const std::string text = text_of(kThisVm);
  const YAML::Node yaml = YAML::Load(text);
  const auto e = spec::load_experiment(kValidate, kAsValidate);
  const auto& platform = e.values.child("platform");
  int checked = 0;
  for (const char* component : kMeasured) {
    ASSERT_TRUE(yaml[component].IsMap()) << component;
    for (const auto& kv : yaml[component]) {
      const std::string key = kv.first.as<std::string>();
      if (key == "description") continue;
      const std::string dotted = std::string(component) + "." + key;
      const config::Param* p = config::find_param(spec::schema::platform(), dotted);
      ASSERT_NE(p, nullptr) << dotted;
      const double value = config::parse_number(*p, kv.second.as<std::string>());
      EXPECT_TRUE(std::isfinite(value)) << dotted;
      EXPECT_TRUE(p->bound == config::Bound::Positive ? value > 0 : value >= 0) << dotted << " = " << value;
      // The loader reads the file's number, nothing else.
      EXPECT_EQ(platform.child(component).number(key), value) << dotted;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 4 + 2 + 3 + 3 + 11);
  // Each number sits under its comment: the probe, the fit (or none) and the repeats.
  std::istringstream in(text);
  std::string comments;
  int commented = 0;
  const std::regex number(R"(^\s*([a-z_0-9]+): [0-9.]+[A-Za-z]*$)");
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(' ');
    if (first != std::string::npos && line[first] == '#') {
      comments += line + "\n";
      continue;
    }
    if (std::regex_match(line, number)) {
      EXPECT_THAT(comments, ::testing::HasSubstr("# probe: ")) << line;
      EXPECT_THAT(comments, ::testing::HasSubstr("# fit: ")) << line;
      EXPECT_THAT(comments, ::testing::HasSubstr("# repeats: ")) << line;
      ++commented;
    }
    comments.clear();
  }
  EXPECT_EQ(commented, checked + 2);  // and memory_servers, server_memory
}

TEST(PlatformThisVm, UnitsReadAsMeasured) {
  // A few values that are exact on this machine, so that a unit slip in the writer shows here.
  const auto e = spec::load_experiment(kValidate, kAsValidate);
  const auto& p = e.platform;
  EXPECT_EQ(p.os.page_size, 4096);
  EXPECT_EQ(p.os.huge_page_size, 2 << 20);
  EXPECT_EQ(p.os.fault_trap, p.os.syscall);  // the trap is taken as one system call round trip
  EXPECT_GT(p.nvme.capacity, 1e9);
}

TEST(PlatformThisVm, ExpertsAreTheEmulatorsScaledOnes) {
  const auto e = spec::load_experiment(kValidate, kAsValidate);
  const auto full = spec::load_model("mixtral-8x7b", "test");
  ASSERT_EQ(e.model.name, "mixtral-8x7b");
  EXPECT_TRUE(e.simulate_emulated);
  EXPECT_DOUBLE_EQ(e.emul.scale, 0.015625);
  EXPECT_DOUBLE_EQ(e.model.expert_scale, e.emul.scale);
  EXPECT_DOUBLE_EQ(e.model.expert_bytes(), e.emul.scale * full.expert_bytes());
  EXPECT_DOUBLE_EQ(e.model.expert_bytes(), 5505024.0);  // 352,321,536 B / 64, a whole number of 4 KiB pages
  // Only the layers the emulator serves are replayed.
  for (std::uint32_t layer = 0; layer < e.model.moe_layers; ++layer)
    EXPECT_EQ(e.replays_layer(layer), layer <= 3) << layer;
  // Without experts: emulated the simulator would replay the full-size experts, 90 GB of them,
  // which this VM's memory pool cannot hold.
  EXPECT_THROW(spec::load_experiment(kValidate, {"mode=sim", "platform=this-vm"}), InputError);
}

TEST(PlatformThisVm, TheEmulatedGpuTakesNoTime) {
  // The emulator computes nothing: the simulator's roofline time of a layer (sim/replay.cpp) must be
  // negligible next to the microseconds of a switch.
  const auto e = spec::load_experiment(kValidate, kAsValidate);
  const auto& gpu = e.platform.gpu;
  const double bytes = e.model.moe_layer_bytes_per_token();
  const double memory_time = bytes / (gpu.hbm_bandwidth * gpu.memory_efficiency);
  const double compute_time = 2.0 * bytes / e.model.bytes_per_param / (gpu.flops * gpu.compute_efficiency);
  EXPECT_LT(memory_time, 1e-12);
  EXPECT_LT(compute_time, 1e-12);
  // The "HBM" is host memory: it holds the resident weights and the cache.
  EXPECT_LE(e.model.resident_bytes() + double(e.cache.gpu_experts) * e.model.expert_bytes(), gpu.hbm_capacity);
}

}  // namespace
}  // namespace rmai
