// The model catalog and the configuration tree: every shipped preset validates, derived sizes
// match the reference figures, and errors name file, line and key.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "config/errors.hpp"
#include "spec/schemas.hpp"
#include "spec/experiment.hpp"

namespace rmai {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Catalog, ExpertSizesMatchTheReference) {
  // docs/reference.md, "MoE models": bytes per expert in MB (fp8 / MXFP4 where shipped so).
  const std::map<std::string, double> megabytes{
      {"mixtral-8x7b", 352.3},     {"mixtral-8x22b", 604.0},      {"deepseek-v2-lite", 17.3},
      {"deepseek-v3", 44.0},       {"qwen1.5-moe-a2.7b", 17.3},   {"qwen3-30b-a3b", 9.44},
      {"olmoe-1b-7b", 12.6},       {"switch-base-128", 9.44},     {"gpt-oss-120b", 13.2}};
  for (const auto& [name, mb] : megabytes) {
    const auto m = spec::load_model(name, name);
    EXPECT_NEAR(m.expert_bytes() / 1e6, mb, 0.051 * (mb > 100 ? 2 : 1)) << name;
  }
  EXPECT_EQ(spec::load_model("mixtral-8x7b", "").expert_bytes(), 3.0 * 4096 * 14336 * 2);
}

TEST(Catalog, DenseLayersPlaceTheMoeLayers) {
  const auto v3 = spec::load_model("deepseek-v3", "");
  EXPECT_EQ(v3.dense_layers, (std::vector<std::uint32_t>{0, 1, 2}));
  EXPECT_EQ(v3.moe_layer_index(0), 3u);
  EXPECT_EQ(v3.moe_layer_index(57), 60u);
  const auto lite = spec::load_model("deepseek-v2-lite", "");
  EXPECT_EQ(lite.moe_layer_index(0), 1u);
  const auto sw = spec::load_model("switch-base-128", "");
  EXPECT_EQ(sw.moe_layer_index(0), 1u);   // encoder layers 1, 3, ..., 11
  EXPECT_EQ(sw.moe_layer_index(6), 13u);  // decoder layers 13, 15, ..., 23
  EXPECT_EQ(sw.moe_layer_index(11), 23u);
  const auto mixtral = spec::load_model("mixtral-8x7b", "");
  EXPECT_TRUE(mixtral.dense_layers.empty());
  EXPECT_EQ(mixtral.moe_layer_index(31), 31u);
  for (const auto& name : config::preset_names("moe")) {  // load_model checks the sum; say it here too
    const auto m = spec::load_model(name, name);
    EXPECT_EQ(m.dense_layers.size() + m.moe_layers, m.layers) << name;
  }
}

TEST(Catalog, EveryPresetValidates) {
  const std::map<std::string, const config::Schema*> kinds{
      {"hardware/nic", &spec::schema::nic()},   {"hardware/pcie", &spec::schema::pcie()},
      {"hardware/gpu", &spec::schema::gpu()},   {"hardware/dram", &spec::schema::dram()},
      {"hardware/cxl", &spec::schema::cxl()},   {"hardware/nvme", &spec::schema::nvme()},
      {"hardware/cxl-pool", &spec::schema::cxl_pool()},
      {"hardware/os", &spec::schema::os()},     {"platforms", &spec::schema::platform()}};
  // Generator presets (models/synthetic) are checked by the generator tests.
  for (const auto& [dir, schema] : kinds) {
    const auto names = config::preset_names(dir);
    EXPECT_FALSE(names.empty()) << dir;
    for (const auto& name : names) {
      const auto file = config::models_dir() / dir / (name + ".yaml");
      EXPECT_NO_THROW(config::resolve(*schema, {{config::load_yaml_file(file), file.string()}}, dir)) << file;
    }
  }
  for (const auto& tier : spec::tiers()) {  // the values below each definition
    YAML::Node values = config::load_yaml_file(tier.file);
    values.remove(spec::kTierDefinitionKey);
    EXPECT_NO_THROW(config::resolve(tier.schema, {{values, tier.file}}, tier.name)) << tier.file;
  }
}

class TempYaml {
 public:
  explicit TempYaml(const std::string& text) {
    path_ = fs::temp_directory_path() / ("rmai-models-test-" + std::to_string(::getpid()) + ".yaml");
    std::ofstream(path_) << text;
  }
  ~TempYaml() { fs::remove(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(Experiment, PresetOverridesLayerOnTop) {
  TempYaml y("model: mixtral-8x7b\nplatform: {preset: default, nic: {bandwidth: 100Gbps}}\ncache: {gpu_experts: 8}\n");
  const auto e = spec::load_experiment(y.path(), {});
  EXPECT_DOUBLE_EQ(e.platform.nic.bandwidth, 12.5e9);
  EXPECT_GT(e.platform.nic.latency, 0) << "the rest of the NIC preset stays";
  const auto set = spec::load_experiment(y.path(), {"platform.nic=connectx-7-400g"});
  EXPECT_DOUBLE_EQ(set.platform.nic.bandwidth, 12.5e9) << "the YAML override still applies on the new preset";
  const auto over = spec::load_experiment(y.path(), {"platform.nic.bandwidth=400Gbps"});
  EXPECT_DOUBLE_EQ(over.platform.nic.bandwidth, 50e9) << "--set wins over the file";
}

TEST(Experiment, DefaultsAndTierParameters) {
  TempYaml y("model: mixtral-8x7b\ncache: {gpu_experts: 8}\n");
  const auto e = spec::load_experiment(y.path(), {"memory.rmai.fault_batch=16"});
  EXPECT_EQ(e.tier, "rmai");
  EXPECT_EQ(e.nodes, 1u);
  EXPECT_EQ(e.cache.policy, "lru");
  EXPECT_EQ(e.tier_params.count("fault_batch"), 16u);
  EXPECT_EQ(e.tier_params.number("region_chunk"), 0) << "'expert' stands for the whole expert";
  EXPECT_EQ(e.trace.seed, e.seed);
}

TEST(Experiment, ResolvedTreeLoadsBackToTheSameValues) {
  TempYaml y("model: mixtral-8x7b\nplatform: {preset: gen5, nic: {latency: 3us}}\ncache: {gpu_experts: 8}\n");
  const auto e = spec::load_experiment(y.path(), {"memory.tier=page4k"});
  YAML::Emitter out;
  out << e.values.to_yaml();
  TempYaml again(out.c_str());
  const auto f = spec::load_experiment(again.path(), {});
  EXPECT_EQ(f.platform.nic.latency, 3e-6);
  EXPECT_EQ(f.platform.memory_servers, e.platform.memory_servers);
  EXPECT_EQ(f.tier, "page4k");
  YAML::Emitter out2;
  out2 << f.values.to_yaml();
  EXPECT_STREQ(out.c_str(), out2.c_str());
}

TEST(Experiment, ErrorsNameFileLineAndKey) {
  TempYaml y("model: mixtral-8x7b\ncache:\n  gpu_experts: 8\n  polcy: lru\n");
  const auto message = error_of([&] { spec::load_experiment(y.path(), {}); });
  EXPECT_NE(message.find(y.path().string() + ":4: cache.polcy: unknown key"), std::string::npos) << message;
  const auto bad_unit = error_of([&] { spec::load_experiment(y.path(), {"platform.nic.latency=3"}); });
  EXPECT_NE(bad_unit.find("--set: platform.nic.latency: bad time"), std::string::npos) << bad_unit;
  const auto preset = error_of([&] {
    TempYaml z("model: mixtral-8x7b\nplatform: {nic: cx9}\ncache: {gpu_experts: 8}\n");
    spec::load_experiment(z.path(), {});
  });
  EXPECT_NE(preset.find(":2: platform.nic: unknown nic preset \"cx9\" (available: connectx-5-100g"), std::string::npos)
      << preset;
}

TEST(Config, SetRejectsMalformedAssignments) {
  YAML::Node root(YAML::NodeType::Map);
  EXPECT_THROW(config::apply_set(root, "nodes"), InputError);
  EXPECT_THROW(config::apply_set(root, "=3"), InputError);
  EXPECT_THROW(config::apply_set(root, "a..b=3"), InputError);
  EXPECT_THROW(config::apply_set(root, "a.=3"), InputError);
  config::apply_set(root, "platform=default");
  config::apply_set(root, "platform.nic.bandwidth=1Gbps");
  EXPECT_EQ(root["platform"]["preset"].as<std::string>(), "default");
  EXPECT_EQ(root["platform"]["nic"]["bandwidth"].as<std::string>(), "1Gbps");
}

}  // namespace
}  // namespace rmai
