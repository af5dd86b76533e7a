// The tier registry: every tier is defined once (models/tiers/<name>.yaml), has a simulator path and
// either an emulator store or the reason why not; nothing registers a path or store of an undefined
// tier; and malformed definitions are InputErrors naming the file, line and field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/errors.hpp"
#include "emul/store.hpp"
#include "sim/tier.hpp"
#include "spec/tiers.hpp"

namespace rmai {
namespace {
namespace fs = std::filesystem;

TEST(Tiers, EveryDefinitionHasASimPathAndAStoreOrSaysWhyNot) {
  ASSERT_FALSE(spec::tiers().empty());
  for (const auto& t : spec::tiers()) {
    EXPECT_TRUE(sim::TierRegistry::instance().contains(t.name)) << t.name << " has no simulator path";
    const bool store = emul::StoreRegistry::instance().contains(t.name);
    EXPECT_NE(store, !t.no_emulation.empty())
        << t.name << (store ? ": has a store but says no_emulation" : ": has no store and does not say why");
    EXPECT_FALSE(t.label.empty() || t.colour.empty() || t.path.empty()) << t.name;
    EXPECT_EQ(t.schema.name, t.name);
  }
}

TEST(Tiers, NothingIsRegisteredForAnUndefinedTier) {
  for (const auto& name : sim::TierRegistry::instance().names())
    EXPECT_NE(spec::find_tier(name), nullptr) << "sim path " << name << " has no definition in models/tiers";
  for (const auto& name : emul::StoreRegistry::instance().names())
    EXPECT_NE(spec::find_tier(name), nullptr) << "store " << name << " has no definition in models/tiers";
}

TEST(Tiers, MediaDecideSharingAndBytes) {
  for (const auto& t : spec::tiers()) {
    const auto& m = t.medium_info();
    EXPECT_EQ(m.shared, t.medium == spec::Medium::RemotePool || t.medium == spec::Medium::CxlPool) << t.name;
    EXPECT_EQ(m.bytes == spec::BytesFrom::None, t.medium == spec::Medium::HostDram) << t.name;
  }
  EXPECT_EQ(&spec::default_tier(), spec::find_tier(spec::default_tier().name));
}

class BadDefinition : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rmai-tiers-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / (name + ".yaml")) << text; }
  std::string error() {
    try {
      spec::load_tiers(dir_);
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }
  static constexpr const char* kGood =
      "tier:\n  order: 1\n  label: A\n  colour: red\n  medium: host-dram\n  default: true\n  path: p\n"
      "  no_emulation: none here\n";
  // The one parameter every tier declares (spec/tiers.cpp).
  static constexpr const char* kConcurrency = "    concurrency: {kind: count, max: 64, description: d}\n";
  fs::path dir_;
};

TEST_F(BadDefinition, AGoodOneLoads) {
  write("a", std::string(kGood) + "  parameters:\n    x: {kind: size, description: d, keyword: all}\n" + kConcurrency +
                 "x: 1KiB\nconcurrency: 1\n");
  const auto tiers = spec::load_tiers(dir_);
  ASSERT_EQ(tiers.size(), 1u);
  ASSERT_NE(tiers[0].schema.find("x"), nullptr);
  EXPECT_EQ(tiers[0].schema.find("x")->kind, config::Kind::Bytes);
  EXPECT_EQ(tiers[0].schema.find("x")->keyword, "all");
  EXPECT_NE(tiers[0].schema.find("description"), nullptr);
  ASSERT_NE(tiers[0].schema.find("concurrency"), nullptr);
  EXPECT_EQ(tiers[0].schema.find("concurrency")->max, 64);
}

TEST_F(BadDefinition, ErrorsNameFileLineAndField) {
  struct Case {
    std::string text, expected;
  };
  for (const auto& c : std::vector<Case>{
           {"description: no block\n", "a.yaml:1: tier: a tier preset starts with its definition"},
           {"tier:\n  order: 1\n", "tier.label: missing"},
           {std::string(kGood) + "  colour2: x\n", "a.yaml:9: tier.colour2: unknown field"},
           {"tier:\n  order: one\n  label: A\n  colour: c\n  medium: nvme\n  path: p\n", "a.yaml:2: tier.order"},
           {"tier:\n  order: -1\n  label: A\n  colour: c\n  medium: nvme\n  path: p\n", "a.yaml:2: tier.order"},
           {"tier:\n  order: 1\n  label: A\n  colour: c\n  medium: tape\n  path: p\n",
            "a.yaml:5: tier.medium: unknown medium \"tape\""},
           {std::string(kGood) + "  parameters:\n    x: {kind: furlongs, description: d}\n",
            "tier.parameters.x.kind: unknown kind \"furlongs\""},
           {std::string(kGood) + "  parameters:\n    x: {kind: size}\n", "tier.parameters.x.description: missing"},
           {std::string(kGood) + "  parameters:\n    x: {kind: size, description: d, bound: odd}\n",
            "tier.parameters.x.bound"},
           {"tier:\n  order: 1\n  label: A\n  colour: c\n  medium: nvme\n  path: p\n  default: maybe\n",
            "a.yaml:7: tier.default: expected true or false"},
           {kGood, "a.yaml:2: tier.parameters: every tier declares concurrency"},
           {std::string(kGood) + "  parameters:\n    concurrency: {kind: count, max: lots, description: d}\n",
            "a.yaml:10: tier.parameters.concurrency.max: expected a positive number"},
       }) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write("a", c.text);
    const std::string e = error();
    EXPECT_NE(e.find(c.expected), std::string::npos) << "got: " << e << "\nfor:\n" << c.text;
  }
}

TEST_F(BadDefinition, OneDefaultAndDistinctOrders) {
  const std::string good = std::string(kGood) + "  parameters:\n" + kConcurrency;
  write("a", good);
  write("b", good);
  // Both places named with their lines: b's order, then a's.
  EXPECT_NE(error().find("b.yaml:2: tier.order: the same order as " + (dir_ / "a.yaml").string() + ":2"),
            std::string::npos)
      << error();
  write("b", "tier:\n  order: 2\n  label: B\n  colour: c\n  medium: nvme\n  path: p\n  default: true\n  parameters:\n" +
                 std::string(kConcurrency));
  EXPECT_NE(error().find("exactly one tier definition must say default: true"), std::string::npos) << error();
}

}  // namespace
}  // namespace rmai
