// rmai calibrate (calib/): the least-squares fit recovers known lines and reports its residual; the
// numbers are written in units that parse back; the preset carries a comment for every number;
// `rmai calibrate --quick` writes a preset that the experiment loader accepts, from any path, with
// every number finite and positive (or zero where the schema allows it); bad input exits 2 naming
// the option and writes nothing; SIGTERM or SIGINT mid-run leave no preset, no temporary and no memd.
// The end-to-end tests skip, saying why, without userfaultfd or huge pages.
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

#include "calib/fit.hpp"
#include "calib/measurement.hpp"
#include "calib/preset.hpp"
#include "calib/probes.hpp"
#include "cli_support.hpp"
#include "config/errors.hpp"
#include "config/tree.hpp"
#include "config/units.hpp"
#include "emul/fabric.hpp"
#include "emul/huge_pages.hpp"
#include "emul/memd_process.hpp"
#include "emul/region.hpp"
#include "spec/experiment.hpp"
#include "spec/schemas.hpp"

namespace rmai {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::kSourceDir;
using testing::run;
namespace fs = std::filesystem;

// --- the fit ---------------------------------------------------------------------------------------

TEST(CalibrateFit, RecoversAnExactLine) {
  const std::vector<double> x{64, 4096, 65536, 1 << 20, 4 << 20};
  std::vector<double> y;
  for (const double v : x) y.push_back(30e-6 + v / 3e9);
  const auto fit = calib::fit_line(x, y);
  EXPECT_NEAR(fit.intercept, 30e-6, 30e-6 * 1e-9);
  EXPECT_NEAR(fit.slope, 1 / 3e9, 1 / 3e9 * 1e-9);
  EXPECT_NEAR(fit.rms_relative, 0, 1e-12);
  EXPECT_EQ(fit.points, 5u);
}

TEST(CalibrateFit, RecoversAFlatLineAndANegativeIntercept) {
  const auto flat = calib::fit_line(std::vector<double>{1, 2, 3}, std::vector<double>{5, 5, 5});
  EXPECT_NEAR(flat.intercept, 5, 1e-12);
  EXPECT_NEAR(flat.slope, 0, 1e-12);
  const auto steep = calib::fit_line(std::vector<double>{10, 20, 40}, std::vector<double>{8, 18, 38});  // y = x - 2
  EXPECT_NEAR(steep.intercept, -2, 1e-9);
  EXPECT_NEAR(steep.slope, 1, 1e-12);
}

// Sum of squared relative errors of a line over the points: what the fit minimises.
double relative_sse(const std::vector<double>& x, const std::vector<double>& y, double a, double b) {
  double sum = 0;
  for (std::size_t i = 0; i < x.size(); ++i) sum += std::pow((a + b * x[i] - y[i]) / y[i], 2);
  return sum;
}

TEST(CalibrateFit, MinimisesRelativeErrorsAndReportsTheirRms) {
  const std::vector<double> x{64, 1024, 16384, 262144, 4194304};
  const std::vector<double> y{21e-6, 18e-6, 26e-6, 90e-6, 1.9e-3};  // noisy, not on a line
  const auto fit = calib::fit_line(x, y);
  // The residual is the RMS of the relative errors of the line it returns.
  EXPECT_NEAR(fit.rms_relative, std::sqrt(relative_sse(x, y, fit.intercept, fit.slope) / 5), 1e-12);
  EXPECT_GT(fit.rms_relative, 0.01);
  // And that line is the minimum: moving either coefficient a little makes the errors larger.
  const double best = relative_sse(x, y, fit.intercept, fit.slope);
  for (const double step : {-1e-3, 1e-3}) {
    EXPECT_GT(relative_sse(x, y, fit.intercept * (1 + step), fit.slope), best);
    EXPECT_GT(relative_sse(x, y, fit.intercept, fit.slope * (1 + step)), best);
  }
}

TEST(CalibrateFit, SmallSizesDecideTheIntercept) {
  // The largest size 10% off: relative weighting keeps the intercept near the small sizes' 10 us.
  const std::vector<double> x{64, 256, 1024, 4096, 4194304};
  std::vector<double> y;
  for (const double v : x) y.push_back(10e-6 + v / 1e9);
  y.back() *= 1.1;
  const auto fit = calib::fit_line(x, y);
  EXPECT_NEAR(fit.intercept, 10e-6, 0.5e-6);
}

TEST(CalibrateFit, RefusesWhatCannotBeFitted) {
  using V = std::vector<double>;
  EXPECT_THROW(calib::fit_line(V{1}, V{1}), std::invalid_argument);
  EXPECT_THROW(calib::fit_line(V{2, 2, 2}, V{1, 2, 3}), std::invalid_argument);
  EXPECT_THROW(calib::fit_line(V{1, 2}, V{1, 2, 3}), std::invalid_argument);
  EXPECT_THROW(calib::fit_line(V{1, 2}, V{1, 0}), std::invalid_argument);
  EXPECT_THROW(calib::fit_line(V{1, 2}, V{1, NAN}), std::invalid_argument);
}

TEST(CalibrateFit, SummariesAreMedianAndSpread) {
  const auto odd = calib::summarize(std::vector<double>{3, 1, 2});
  EXPECT_EQ(odd.median, 2);
  EXPECT_EQ(odd.min, 1);
  EXPECT_EQ(odd.max, 3);
  EXPECT_EQ(odd.count, 3u);
  EXPECT_EQ(calib::summarize(std::vector<double>{4, 1, 3, 2}).median, 2.5);
  EXPECT_THROW(calib::summarize(std::vector<double>{}), std::invalid_argument);
  EXPECT_THROW(calib::summarize(std::vector<double>{1, INFINITY}), std::invalid_argument);
}

TEST(CalibrateFit, SweepsFitTheMediansAndEachRepeat) {
  // Three repeats per size: the true time, 10% above and 10% below. The medians are on the line;
  // each repeat's own fit gives the spread.
  calib::SizeSweep sweep;
  for (const double size : {4096.0, 65536.0, 1048576.0}) {
    const double t = 5e-6 + size / 2e9;
    sweep.sizes.push_back(size);
    sweep.times.push_back({t * 1.1, t, t * 0.9});
  }
  const auto fit = calib::fit_medians(sweep);
  EXPECT_NEAR(fit.intercept, 5e-6, 5e-6 * 1e-9);
  EXPECT_NEAR(1 / fit.slope, 2e9, 2e9 * 1e-9);
  const auto each = calib::fit_each_repeat(sweep);
  ASSERT_EQ(each.size(), 3u);
  EXPECT_NEAR(each[0].intercept, 5.5e-6, 5.5e-6 * 1e-9);
  EXPECT_NEAR(each[2].intercept, 4.5e-6, 4.5e-6 * 1e-9);
  const auto m = calib::from_fit(sweep, [](const calib::LineFit& f) { return 1 / f.slope; }, "probe");
  EXPECT_NEAR(m.value, 2e9, 2e9 * 1e-9);
  EXPECT_NEAR(m.repeats.min, 2e9 / 1.1, 1);
  EXPECT_NEAR(m.repeats.max, 2e9 / 0.9, 1);
  ASSERT_TRUE(m.fit);
  EXPECT_NEAR(m.fit->rms_relative, 0, 1e-12);
}

// --- the preset's text ---------------------------------------------------------------------------

TEST(CalibrateFormat, ValuesParseBackToThreeDigits) {
  const std::vector<std::pair<double, calib::Unit>> values{
      {13.8e-6, calib::Unit::Time},  {0.33e-6, calib::Unit::Time},     {999.7e-9, calib::Unit::Time},
      {1.5e-3, calib::Unit::Time},   {2.0, calib::Unit::Time},         {2.8e9, calib::Unit::Bandwidth},
      {640e6, calib::Unit::Bandwidth}, {4096, calib::Unit::Bytes},     {2097152, calib::Unit::Bytes},
      {25275486208.0, calib::Unit::Bytes}, {0, calib::Unit::Time}};
  for (const auto& [value, unit] : values) {
    const std::string text = calib::yaml_value(value, unit);
    const auto quantity = unit == calib::Unit::Time        ? units::Quantity::Time
                          : unit == calib::Unit::Bandwidth ? units::Quantity::Bandwidth
                                                           : units::Quantity::Bytes;
    EXPECT_NEAR(units::parse(text, quantity), value, std::fabs(value) * 5e-3) << text;
  }
  EXPECT_EQ(calib::yaml_value(4096, calib::Unit::Bytes), "4KiB");
  EXPECT_EQ(calib::yaml_value(2097152, calib::Unit::Bytes), "2MiB");
  EXPECT_EQ(calib::yaml_value(13.84e-6, calib::Unit::Time), "13.8us");
  EXPECT_EQ(calib::yaml_value(2.8e9, calib::Unit::Bandwidth), "2.8GBps");
  EXPECT_EQ(calib::yaml_value(1, calib::Unit::Count), "1");
  EXPECT_EQ(calib::yaml_value(6.35e-22, calib::Unit::Time), "0ns");  // a subtraction's rounding residue
  EXPECT_THROW(calib::yaml_value(NAN, calib::Unit::Time), std::invalid_argument);
}

// The lines of `text` that set a number, with the comment lines just above each.
std::vector<std::pair<std::string, std::string>> numbers_and_comments(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string comments;
  const std::regex number(R"(^\s*([a-z_0-9]+): [0-9.]+[A-Za-z]*$)");
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of(' ') != std::string::npos && line[line.find_first_not_of(' ')] == '#') {
      comments += line + "\n";
      continue;
    }
    if (std::regex_match(line, number)) out.emplace_back(line, comments);
    comments.clear();
  }
  return out;
}

calib::Measurement measured(double value, std::string probe) {
  calib::Measurement m;
  m.value = value;
  m.probe = std::move(probe);
  m.repeats = calib::summarize(std::vector<double>{value * 0.9, value, value * 1.2});
  return m;
}

TEST(CalibratePreset, EveryNumberHasItsComment) {
  calib::Preset p;
  p.header = {"a header", "  rmai calibrate -o x.yaml"};
  p.description = "a \"quoted\" description";
  calib::Measurement once;
  once.value = 1;
  once.probe = "one memd";
  p.top = {{"memory_servers", calib::Unit::Count, once}};
  calib::Measurement fitted = measured(2.5e9, "a sweep");
  fitted.fit = calib::LineFit{1e-6, 4e-10, 0.031, 9};
  fitted.derivation = "1 / slope";
  p.components.push_back({"nic", "measured", {{"bandwidth", calib::Unit::Bandwidth, fitted},
                                              {"latency", calib::Unit::Time, measured(3e-6, "a ping-pong")}},
                          "", ""});
  p.components.push_back({"gpu", "", {}, "emulated-none", "not measured"});
  const std::string text = calib::render(p);
  const YAML::Node yaml = YAML::Load(text);
  EXPECT_EQ(yaml["description"].as<std::string>(), "a \"quoted\" description");
  EXPECT_EQ(yaml["memory_servers"].as<int>(), 1);
  EXPECT_EQ(yaml["nic"]["bandwidth"].as<std::string>(), "2.5GBps");
  EXPECT_EQ(yaml["nic"]["latency"].as<std::string>(), "3us");
  EXPECT_EQ(yaml["gpu"].as<std::string>(), "emulated-none");
  const auto numbers = numbers_and_comments(text);
  ASSERT_EQ(numbers.size(), 3u);
  for (const auto& [line, comments] : numbers) {
    EXPECT_THAT(comments, HasSubstr("# probe: ")) << line;
    EXPECT_THAT(comments, HasSubstr("# fit: ")) << line;
    EXPECT_THAT(comments, HasSubstr("# repeats: ")) << line;
  }
  EXPECT_THAT(numbers[1].second, HasSubstr("fit: residual 3.1% RMS relative over 9 per-size medians"));
  EXPECT_THAT(numbers[1].second, HasSubstr("value: 1 / slope"));
  EXPECT_THAT(numbers[2].second, HasSubstr("repeats: median 3 us, spread 2.7 us - 3.6 us (min - max of 3)"));
  EXPECT_THAT(numbers[0].second, HasSubstr("repeats: none (read once)"));
  EXPECT_THAT(text, HasSubstr("# not measured\ngpu: emulated-none\n"));
  EXPECT_THAT(text, HasSubstr("#  rmai calibrate -o x.yaml\n"));
}

TEST(CalibratePreset, RefusesANumberThatWentWrong) {
  for (const double bad : {-1.0, double(NAN), double(INFINITY)}) {
    calib::Preset p;
    p.components.push_back({"nic", "", {{"latency", calib::Unit::Time, measured(1e-6, "x")}}, "", ""});
    p.components.back().entries.back().m.value = bad;
    EXPECT_THROW(calib::render(p), std::invalid_argument) << bad;
  }
}

// --- rmai calibrate ------------------------------------------------------------------------------

// Why the end-to-end runs cannot work here, or "".
std::string unavailable() {
  if (const auto why = emul::userfaultfd_unavailable_reason(); !why.empty()) return "no userfaultfd: " + why;
  if (::geteuid() != 0 && emul::free_huge_pages() < calib::kHugePagesNeeded) return "no huge pages: needs root or 32 free in vm.nr_hugepages";
  return "";
}

class Calibrate : public testing::TempDirTest {};

// One quick calibration for the tests that read its preset (it takes a few seconds).
class CalibrateQuick : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!unavailable().empty()) return;
    dir_ = new fs::path(fs::temp_directory_path() / ("rmai_calibrate_test_" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    result_ = new testing::Result(run({"calibrate", "--quick", "-o", (*dir_ / "here.yaml").string()}));
  }
  static void TearDownTestSuite() {
    if (dir_) fs::remove_all(*dir_);
    delete dir_;
    delete result_;
    dir_ = nullptr;
    result_ = nullptr;
  }
  void SetUp() override {
    if (const auto why = unavailable(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_EQ(result_->exit_code, 0) << result_->err;
  }
  static fs::path preset() { return *dir_ / "here.yaml"; }
  static fs::path* dir_;
  static testing::Result* result_;
};
fs::path* CalibrateQuick::dir_ = nullptr;
testing::Result* CalibrateQuick::result_ = nullptr;

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST_F(CalibrateQuick, WritesAPresetTheLoaderAcceptsFromAnyPath) {
  EXPECT_TRUE(testing::temporaries_under(*dir_).empty());
  EXPECT_THAT(result_->err, HasSubstr("use it with --set platform=" + preset().string()));
  // The validation's simulator run on it, as rmai validate --platform FILE does.
  const auto r = run({"run", (kSourceDir / "experiments" / "validate.yaml").string(), "--set", "mode=sim", "--set",
                      "experts=emulated", "--set", "platform=" + preset().string(), "--out", (*dir_ / "run").string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto e = spec::load_experiment(kSourceDir / "experiments" / "validate.yaml",
                                       {"mode=sim", "experts=emulated", "platform=" + preset().string()});
  EXPECT_EQ(e.platform.preset, preset().string());
  const auto& platform = e.values.child("platform");
  // Measured components are inline; the others name their presets.
  for (const char* inline_component : {"nic", "pcie", "dram", "os"}) EXPECT_EQ(platform.child(inline_component).preset(), "");
  EXPECT_EQ(platform.child("gpu").preset(), "emulated-none");
  EXPECT_EQ(platform.child("cxl").preset(), "cxl-expander-x8");
  EXPECT_FALSE(platform.child("nvme").preset().empty());  // not measured without --disk: a preset
  EXPECT_EQ(e.platform.os.page_size, double(::sysconf(_SC_PAGESIZE)));
  EXPECT_EQ(e.platform.os.huge_page_size, double(emul::kHugePageSize));
  EXPECT_EQ(e.platform.memory_servers, 1u);
}

TEST_F(CalibrateQuick, EveryNumberIsFiniteWithinItsBoundsAndCommented) {
  const std::string text = slurp(preset());
  const YAML::Node yaml = YAML::Load(text);
  int checked = 0;
  for (const char* component : {"nic", "pcie", "dram", "os"}) {
    ASSERT_TRUE(yaml[component].IsMap()) << component;
    for (const auto& kv : yaml[component]) {
      const std::string key = kv.first.as<std::string>();
      if (key == "description") continue;
      const std::string dotted = std::string(component) + "." + key;
      const config::Param* p = config::find_param(spec::schema::platform(), dotted);
      ASSERT_NE(p, nullptr) << dotted << " is not a platform parameter";
      const double value = config::parse_number(*p, kv.second.as<std::string>());
      EXPECT_TRUE(std::isfinite(value)) << dotted;
      if (p->bound == config::Bound::Positive)
        EXPECT_GT(value, 0) << dotted;
      else
        EXPECT_GE(value, 0) << dotted;
      ++checked;
    }
  }
  // Every parameter of the four components; on more than one core, pcie and dram say what one
  // thread moves (flow_bandwidth) besides what all move, which is never less.
  cpu_set_t affinity;
  CPU_ZERO(&affinity);
  const bool cores = sched_getaffinity(0, sizeof affinity, &affinity) == 0 && CPU_COUNT(&affinity) > 1;
  EXPECT_EQ(checked, 4 + 2 + 3 + 11 + (cores ? 2 : 0));
  for (const char* component : {"pcie", "dram"}) {
    EXPECT_EQ(bool(yaml[component]["flow_bandwidth"]), cores) << component;
    if (!cores) continue;
    const config::Param* p = config::find_param(spec::schema::platform(), std::string(component) + ".bandwidth");
    EXPECT_GE(config::parse_number(*p, yaml[component]["bandwidth"].as<std::string>()),
              config::parse_number(*p, yaml[component]["flow_bandwidth"].as<std::string>())) << component;
  }
  const auto numbers = numbers_and_comments(text);
  EXPECT_EQ(numbers.size(), std::size_t(checked) + 2);  // and memory_servers, server_memory
  for (const auto& [line, comments] : numbers) {
    EXPECT_THAT(comments, HasSubstr("# probe: ")) << line;
    EXPECT_THAT(comments, HasSubstr("# fit: ")) << line;
    EXPECT_THAT(comments, HasSubstr("# repeats: ")) << line;
  }
  // The fitted numbers say their residual; the repeated ones their median and spread.
  EXPECT_THAT(text, HasSubstr("RMS relative over"));
  EXPECT_THAT(text, HasSubstr("(min - max of 3)"));
}

TEST_F(Calibrate, WithDiskMeasuresTheDiskAndLeavesNoFileThere) {
  if (const auto why = unavailable(); !why.empty()) GTEST_SKIP() << why;
  const fs::path disk = dir_ / "disk";
  fs::create_directories(disk);
  struct statfs info {};
  ASSERT_EQ(::statfs(disk.c_str(), &info), 0);
  if (info.f_type == TMPFS_MAGIC) GTEST_SKIP() << disk << " is on tmpfs";
  const auto r = run({"calibrate", "--quick", "--repeats", "2", "--disk", disk.string(), "-o", (dir_ / "d.yaml").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::is_empty(disk));
  const auto e = spec::load_experiment(kSourceDir / "experiments" / "validate.yaml",
                                       {"mode=sim", "experts=emulated", "platform=" + (dir_ / "d.yaml").string()});
  EXPECT_EQ(e.values.child("platform").child("nvme").preset(), "");
  EXPECT_GT(e.platform.nvme.bandwidth, 0);
  EXPECT_GT(e.platform.nvme.latency, 0);
  EXPECT_GT(e.platform.nvme.capacity, 0);
  EXPECT_THAT(slurp(dir_ / "d.yaml"), HasSubstr("read_ahead_kb of that device"));
  EXPECT_THAT(slurp(dir_ / "d.yaml"), HasSubstr("(min - max of 2)"));
}

TEST_F(Calibrate, MeasuresTheNetworkToARunningMemd) {
  // The cluster case: memd started on its own (here on loopback), rmai calibrate given its address.
  if (const auto why = unavailable(); !why.empty()) GTEST_SKIP() << why;
  emul::MemdProcessOptions m;
  m.binary = testing::kRmai;
  m.experiment = kSourceDir / "calib" / "memd.yaml";
  m.secret_file = emul::write_secret_file(dir_);
  emul::MemdProcess memd(m);
  const std::vector<std::string> server{"--server", memd.address(), "--secret-file", m.secret_file.string()};
  std::vector<std::string> args{"calibrate", "--quick", "--repeats", "2", "-o", (dir_ / "c.yaml").string()};
  args.insert(args.end(), server.begin(), server.end());
  const auto r = run(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string text = slurp(dir_ / "c.yaml");
  EXPECT_THAT(text, HasSubstr("memd at " + memd.address() + " via tcp"));
  EXPECT_THAT(text, HasSubstr("TCP handshakes with memd's control port at " + memd.address()));
  EXPECT_THAT(memd.log(), HasSubstr("connected"));
  const auto e = spec::load_experiment(kSourceDir / "experiments" / "validate.yaml",
                                       {"mode=sim", "experts=emulated", "platform=" + (dir_ / "c.yaml").string()});
  EXPECT_GT(e.platform.nic.bandwidth, 0);
  // A memd serving another provider is refused before any probe.
  std::vector<std::string> shm{"calibrate", "--quick", "--provider", "shm", "-o", (dir_ / "s.yaml").string()};
  shm.insert(shm.end(), server.begin(), server.end());
  if (emul::provider_unavailable_reason("shm").empty()) {
    const auto refused = run(shm);
    EXPECT_EQ(refused.exit_code, 2) << refused.err;
    EXPECT_THAT(refused.err, HasSubstr("rmai: error: --provider: memd at " + memd.address() + " serves via tcp"));
    EXPECT_THAT(refused.err, Not(HasSubstr("dram:")));
    EXPECT_FALSE(fs::exists(dir_ / "s.yaml"));
  }
}

TEST_F(Calibrate, BadInputExitsTwoNamingTheOption) {
  const fs::path out = dir_ / "x.yaml";
  const fs::path secret = write("secret", "0123456789abcdef0123456789abcdef\n");
  const fs::path file = write("plain-file", "x");
  fs::create_directories(dir_ / "dir.yaml");
  struct Case {
    std::vector<std::string> args;
    std::string option;
  };
  std::vector<Case> cases{
      {{"--provider", "nosuch"}, "--provider"},
      {{"--repeats", "0"}, "--repeats"},
      {{"--repeats", "101"}, "--repeats"},
      {{"--repeats", "many"}, "--repeats"},
      {{"--disk", (dir_ / "missing").string()}, "--disk"},
      {{"--disk", file.string()}, "--disk"},
      {{"--server", "127.0.0.1:7700"}, "--secret-file"},
      {{"--secret-file", secret.string()}, "--server"},
      {{"--server", "nocolon", "--secret-file", secret.string()}, "--server"},
      {{"--server", "127.0.0.1:7700", "--secret-file", (dir_ / "missing").string()}, "--secret-file"},
  };
  struct statfs shm {};
  if (::statfs("/dev/shm", &shm) == 0 && shm.f_type == TMPFS_MAGIC) cases.push_back({{"--disk", "/dev/shm"}, "--disk"});
  for (auto c : cases) {
    c.args.insert(c.args.begin(), "calibrate");
    c.args.insert(c.args.end(), {"-o", out.string()});
    const auto r = run(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args[1] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("rmai: error: " + c.option)) << c.args[1];
  }
  // Where the preset cannot go.
  for (const fs::path& bad : {dir_ / "missing" / "x.yaml", fs::path("/proc/x.yaml"), dir_ / "x.txt", dir_ / "dir.yaml"}) {
    const auto r = run({"calibrate", "-o", bad.string()});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("rmai: error: -o")) << bad;
  }
  const auto none = run({"calibrate", "--quick"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("-o"));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(testing::temporaries_under(dir_).empty());
}

TEST_F(Calibrate, NoUserfaultfdIsBadInputFoundFirst) {
  // Run as nobody where unprivileged userfaultfd is off: the check refuses before any probe.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the command as another user";
  std::ifstream sysctl("/proc/sys/vm/unprivileged_userfaultfd");
  int unprivileged = -1;
  if (!(sysctl >> unprivileged) || unprivileged != 0) GTEST_SKIP() << "vm.unprivileged_userfaultfd is not 0";
  struct stat dev {};
  if (::stat("/dev/userfaultfd", &dev) == 0 && (dev.st_mode & 0006)) GTEST_SKIP() << "/dev/userfaultfd is open to everyone";
  fs::permissions(dir_, fs::perms::all);
  const auto r = run({"calibrate", "--quick", "-o", (dir_ / "x.yaml").string()}, {}, [] {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(125);
  });
  ASSERT_NE(r.exit_code, 125) << "could not become nobody";
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("rmai: error: userfaultfd"));
  EXPECT_THAT(r.err, Not(HasSubstr("dram:")));  // no probe ran
  EXPECT_FALSE(fs::exists(dir_ / "x.yaml"));
}

// The pids of the children of `pid` (its memd).
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  for (pid_t child = 0; in >> child;) out.push_back(child);
  return out;
}

bool gone(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const auto end = stat.rfind(')');
  return stat.empty() || end == std::string::npos || stat.compare(end + 2, 1, "Z") == 0;
}

TEST_F(Calibrate, InterruptedMidRunLeavesNothingBehind) {
  if (const auto why = unavailable(); !why.empty()) GTEST_SKIP() << why;
  for (const int signal : {SIGTERM, SIGINT}) {
    const fs::path out = dir_ / ("x-" + std::to_string(signal) + ".yaml");
    const fs::path log = dir_ / ("log-" + std::to_string(signal));
    const pid_t pid = testing::start({"calibrate", "--quick", "-o", out.string()}, log);
    // Mid-run: memd serving, the transport being measured.
    int status = 0;
    bool exited = false;
    testing::eventually(
        [&] { return slurp(log).find("nic: bandwidth") != std::string::npos || (exited = ::waitpid(pid, &status, WNOHANG) == pid); },
        120);
    ASSERT_FALSE(exited) << "it ended before the transport probes: " << slurp(log);
    ASSERT_THAT(slurp(log), HasSubstr("nic: bandwidth"));
    const auto children = children_of(pid);
    EXPECT_FALSE(children.empty()) << "memd should be running";
    ::kill(pid, signal);
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == signal) << status << "\n" << slurp(log);
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(testing::temporaries_under(dir_).empty());
    for (const pid_t child : children) EXPECT_TRUE(testing::eventually([&] { return gone(child); }, 10)) << child;
  }
}

}  // namespace
}  // namespace rmai
