// The `this-vm` platform (models/platforms/this-vm.yaml): what `rmai validate` gives the simulator so
// that it describes the machine the emulator runs on. Loaded the way validate loads it (the
// validation experiment with --set mode=sim --set experts=emulated --set platform=this-vm), every
// number must be the one its hardware preset gives, and the experts must be the emulator's scaled
// ones.
#include <gtest/gtest.h>

#include <filesystem>
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
const std::vector<std::string> kAsValidate{"mode=sim", "experts=emulated", "platform=this-vm"};

// A hardware preset file, resolved on its own against its schema.
config::Values preset(const std::string& kind, const std::string& name, const config::Schema& schema) {
  const fs::path file = config::models_dir() / "hardware" / kind / (name + ".yaml");
  EXPECT_TRUE(fs::exists(file)) << file;
  return config::resolve(schema, {{config::load_yaml_file(file), file.string()}}, kind);
}

TEST(PlatformThisVm, NamesTheMeasuredPresets) {
  const auto e = spec::load_experiment(kValidate, kAsValidate);
  EXPECT_EQ(e.platform.preset, "this-vm");
  const auto& platform = e.values.child("platform");
  EXPECT_EQ(platform.child("nic").preset(), "loopback-ofi-tcp");
  EXPECT_EQ(platform.child("pcie").preset(), "memcpy-this-vm");
  EXPECT_EQ(platform.child("gpu").preset(), "emulated-none");
  EXPECT_EQ(platform.child("dram").preset(), "guest-this-vm");
  EXPECT_EQ(platform.child("nvme").preset(), "virtio-this-vm");
  EXPECT_EQ(platform.child("os").preset(), "linux-this-vm-pvm-guest");
  // One memd on loopback holding the pool in this VM's memory.
  EXPECT_EQ(e.platform.memory_servers, 1u);
  EXPECT_DOUBLE_EQ(e.platform.server_memory, 23.5 * 1024 * 1024 * 1024);
}

TEST(PlatformThisVm, NumbersAreThePresetsOwn) {
  const auto e = spec::load_experiment(kValidate, kAsValidate);
  const auto& p = e.platform;
  namespace schema = spec::schema;

  const auto nic = preset("nic", "loopback-ofi-tcp", schema::nic());
  EXPECT_DOUBLE_EQ(p.nic.bandwidth, nic.number("bandwidth"));
  EXPECT_DOUBLE_EQ(p.nic.latency, nic.number("latency"));
  EXPECT_DOUBLE_EQ(p.nic.op_overhead, nic.number("op_overhead"));

  const auto pcie = preset("pcie", "memcpy-this-vm", schema::pcie());
  EXPECT_DOUBLE_EQ(p.pcie.bandwidth, pcie.number("bandwidth"));
  EXPECT_DOUBLE_EQ(p.pcie.latency, pcie.number("latency"));

  const auto gpu = preset("gpu", "emulated-none", schema::gpu());
  EXPECT_DOUBLE_EQ(p.gpu.hbm_capacity, gpu.number("hbm_capacity"));
  EXPECT_DOUBLE_EQ(p.gpu.hbm_bandwidth, gpu.number("hbm_bandwidth"));
  EXPECT_DOUBLE_EQ(p.gpu.flops, gpu.number("flops"));
  EXPECT_DOUBLE_EQ(p.gpu.memory_efficiency, gpu.number("memory_efficiency"));
  EXPECT_DOUBLE_EQ(p.gpu.compute_efficiency, gpu.number("compute_efficiency"));
  EXPECT_DOUBLE_EQ(p.gpu.copy_launch, gpu.number("copy_launch"));

  const auto dram = preset("dram", "guest-this-vm", schema::dram());
  EXPECT_DOUBLE_EQ(p.dram.bandwidth, dram.number("bandwidth"));
  EXPECT_DOUBLE_EQ(p.dram.latency, dram.number("latency"));

  const auto nvme = preset("nvme", "virtio-this-vm", schema::nvme());
  EXPECT_DOUBLE_EQ(p.nvme.bandwidth, nvme.number("read_bandwidth"));
  EXPECT_DOUBLE_EQ(p.nvme.latency, nvme.number("read_latency"));
  EXPECT_DOUBLE_EQ(p.nvme.capacity, nvme.number("capacity"));

  const auto os = preset("os", "linux-this-vm-pvm-guest", schema::os());
  EXPECT_DOUBLE_EQ(p.os.page_size, os.number("page_size"));
  EXPECT_DOUBLE_EQ(p.os.fault_trap, os.number("fault_trap"));
  EXPECT_DOUBLE_EQ(p.os.fault_handler, os.number("fault_handler"));
  EXPECT_DOUBLE_EQ(p.os.region_lookup, os.number("region_lookup"));
  EXPECT_DOUBLE_EQ(p.os.pte_install, os.number("pte_install"));
  EXPECT_DOUBLE_EQ(p.os.syscall, os.number("syscall"));
  EXPECT_DOUBLE_EQ(p.os.page_cache_insert, os.number("page_cache_insert"));
  EXPECT_DOUBLE_EQ(p.os.tlb_shootdown, os.number("tlb_shootdown"));
}

TEST(PlatformThisVm, UnitsReadAsMeasured) {
  // A few values in SI units, so that a unit typo in a preset (us for ns, GB for GiB) shows here.
  const auto e = spec::load_experiment(kValidate, kAsValidate);
  const auto& p = e.platform;
  EXPECT_EQ(p.os.page_size, 4096);
  EXPECT_GT(p.nic.bandwidth, 1e9);   // GB/s-class loopback transport
  EXPECT_LT(p.nic.bandwidth, 1e10);
  EXPECT_GT(p.nic.latency, 1e-6);    // tens of us on this VM, not RDMA's ~1 us
  EXPECT_LT(p.nic.latency, 1e-4);
  EXPECT_GT(p.os.fault_trap + p.os.fault_handler + p.os.pte_install, 5e-6);  // ~11.5 us per fault here
  EXPECT_LT(p.os.fault_trap + p.os.fault_handler + p.os.pte_install, 5e-5);
  EXPECT_GT(p.pcie.bandwidth, p.nic.bandwidth);  // memcpy outruns the transport
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
