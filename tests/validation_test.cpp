// The simulator against the emulator on this machine, calibrated first: `rmai calibrate --quick`
// writes a platform preset from this machine's probes, then `rmai validate` on a small version of
// experiments/validate.yaml (repeated emulator runs, medians) with it. Switch, fault and transition
// counts must be identical in both halves for every tier the calibration covers. The time errors
// are printed, not asserted: on this shared VM they still miss the 15% goal for some tiers from one
// minute to the next (experiments/validate.md says by how much and why); the bound joins the
// assertions once the model meets it. CTest runs it alone (RUN_SERIAL), since other processes
// change the emulator's timings.
#include <gtest/gtest.h>

#include <iostream>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "emul/huge_pages.hpp"
#include "emul/region.hpp"

namespace rmai::testing {
namespace {

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#endif
#endif
  return false;
}

// validation.csv as tier/metric -> its cells.
std::map<std::string, std::vector<std::string>> rows_of(const fs::path& csv) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  std::map<std::string, std::vector<std::string>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream s(line);
    for (std::string c; std::getline(s, c, ',');) cells.push_back(c);
    if (cells.size() >= 5) rows[cells[0] + "/" + cells[1]] = cells;
  }
  return rows;
}

class Validation : public TempDirTest {};

TEST_F(Validation, CalibratedSimulatorCountsWhatTheEmulatorDoes) {
  if (sanitized()) GTEST_SKIP() << "timings of a sanitized build are not this machine's";
  if (const auto why = emul::userfaultfd_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  {
    emul::HugePageReservation huge(20);  // calibrate reserves 20; the rmai tier maps 2 MiB pages (validate.yaml)
    if (!huge.ok()) GTEST_SKIP() << "no 2 MiB huge pages here (root raises vm.nr_hugepages)";
  }
  const fs::path platform = dir_ / "calibrated.yaml";
  const auto calibrated = run({"calibrate", "--quick", "--disk", "/var/tmp", "-o", platform.string()});
  ASSERT_EQ(calibrated.exit_code, 0) << calibrated.err;

  const fs::path out = dir_ / "validate";
  const std::vector<std::string> tiers{"dram", "rmai", "page4k", "disk-read"};
  const auto validated = run({"validate", (kSourceDir / "experiments" / "validate.yaml").string(), "--out",
                              out.string(), "--tiers", "dram,rmai,page4k,disk-read", "--repeats", "3",
                              "--platform", platform.string(), "--set", "trace.tokens=24"});
  ASSERT_EQ(validated.exit_code, 0) << validated.err;
  auto rows = rows_of(out / "validation.csv");
  for (const auto& tier : tiers) {
    for (const char* metric : {"expert_switches", "page_faults", "user_kernel_transitions"}) {
      const auto& r = rows[tier + "/" + metric];
      ASSERT_GE(r.size(), 5u) << tier << " " << metric;
      EXPECT_EQ(r[2], r[3]) << tier << " " << metric << ": emul " << r[2] << ", sim " << r[3];
    }
    for (const char* metric : {"switch_p50_s", "replay_s"}) {
      const auto& r = rows[tier + "/" + metric];
      ASSERT_GE(r.size(), 8u) << tier << " " << metric;
      EXPECT_EQ(r[7], "3") << tier << " " << metric << ": the emulator's repeats";
      std::cout << tier << " " << metric << ": emul median " << r[2] << " s [" << r[5] << ", " << r[6] << "], sim "
                << r[3] << " s, error " << r[4] << "\n";
    }
  }
}

}  // namespace
}  // namespace rmai::testing
