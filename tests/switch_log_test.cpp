// The switch log (metrics/switch_log.hpp): the streaming summary's percentiles stay within their
// stated bound of the exact ones past the exact limit, and a streamed switches.csv holds the
// selected rows (plain or zstd-compressed), is committed with the other result files, and leaves
// nothing behind unwritten.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <zstd.h>

#include "config/errors.hpp"
#include "metrics/results.hpp"
#include "posix/files.hpp"

namespace rmai::metrics {
namespace {

namespace fs = std::filesystem;

void expect_within_bound(const Distribution& got, const Distribution& exact) {
  const double a = StreamingSummary::kRelativeError;
  EXPECT_NEAR(got.p50, exact.p50, a * exact.p50);
  EXPECT_NEAR(got.p95, exact.p95, a * exact.p95);
  EXPECT_NEAR(got.p99, exact.p99, a * exact.p99);
  EXPECT_NEAR(got.mean, exact.mean, 1e-9 * exact.mean);  // exact but for the order of the sum
  EXPECT_EQ(got.max, exact.max);
}

// Distributions shaped like switch latencies: log-normal, bimodal (hits of a host cache against
// remote fetches), a few values repeated (contention levels), and one constant.
std::vector<std::vector<double>> samples(std::size_t n) {
  std::mt19937_64 random(15);
  std::vector<std::vector<double>> out(4);
  std::lognormal_distribution<double> lognormal(std::log(0.03), 0.8);
  std::normal_distribution<double> fast(4e-4, 2e-5), slow(0.03, 3e-3);
  for (std::size_t i = 0; i < n; ++i) {
    out[0].push_back(lognormal(random));
    out[1].push_back(i % 5 == 0 ? std::abs(fast(random)) : std::abs(slow(random)));
    out[2].push_back(0.0140989 * double(1 + random() % 8));
    out[3].push_back(0.0308766828);
  }
  return out;
}

TEST(StreamingSummary, ExactUpToItsLimit) {
  for (const auto& values : samples(1000)) {
    StreamingSummary s(1000);
    for (const double v : values) s.add(v);
    const auto got = s.summary(), exact = summarize(values);
    EXPECT_EQ(got.p50, exact.p50);
    EXPECT_EQ(got.p99, exact.p99);
    EXPECT_EQ(got.mean, exact.mean);
  }
}

TEST(StreamingSummary, PercentilesWithinTheStatedBoundPastTheLimit) {
  for (const auto& values : samples(200000)) {
    StreamingSummary s(5000);  // the histogram takes over after 5000 values
    for (const double v : values) s.add(v);
    EXPECT_EQ(s.count(), values.size());
    expect_within_bound(s.summary(), summarize(values));
  }
}

// Summaries of parts merged in order summarize as one summary of them all: to the last bit while
// every value is kept (the replay's nodes merged into a run), and, past the limit, with the same
// histogram (the mean only summed in another order).
TEST(StreamingSummary, MergedPartsSummarizeAsOne) {
  for (const std::size_t limit : {std::size_t(100000), std::size_t(5000), std::size_t(300)}) {
    for (const auto& values : samples(12000)) {
      StreamingSummary whole(limit), merged(limit);
      std::vector<StreamingSummary> parts(4, StreamingSummary(limit));
      for (std::size_t i = 0; i < values.size(); ++i) {
        whole.add(values[i]);
        parts[i * parts.size() / values.size()].add(values[i]);  // four runs of 3000
      }
      for (const auto& part : parts) merged.merge(part);
      const auto a = merged.summary(), b = whole.summary();
      EXPECT_EQ(merged.count(), whole.count());
      EXPECT_EQ(merged.values(), whole.values());
      EXPECT_EQ(a.p50, b.p50);
      EXPECT_EQ(a.p95, b.p95);
      EXPECT_EQ(a.p99, b.p99);
      EXPECT_EQ(a.max, b.max);
      if (limit > values.size())
        EXPECT_EQ(a.mean, b.mean);
      else
        EXPECT_NEAR(a.mean, b.mean, 1e-12 * b.mean);
    }
  }
}

TEST(StreamingSummary, ZeroDurationsCountAsZero) {
  std::vector<double> values(300, 0.0);
  for (int i = 0; i < 700; ++i) values.push_back(1e-3 * (1 + i));
  StreamingSummary s(10);
  for (const double v : values) s.add(v);
  const auto exact = summarize(values);
  EXPECT_NEAR(s.summary().p50, exact.p50, StreamingSummary::kRelativeError * exact.p50);
  EXPECT_EQ(s.summary().max, exact.max);
}

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("rmai-switch-log-test-" + std::to_string(::getpid()));
  Scratch() { fs::create_directories(dir); }
  ~Scratch() { fs::remove_all(dir); }
};

SwitchRecord record(std::uint64_t i) { return {std::uint32_t(i % 3), i, std::uint32_t(i % 32), 7, 0.5 * double(i), 0.5 * double(i) + 0.25, 1e6, 1}; }

std::size_t rows(const std::string& csv) { return std::size_t(std::count(csv.begin(), csv.end(), '\n')) - 1; }

TEST(SwitchLog, StreamsTheSelectedRowsAndCommitsThemWithTheResults) {
  Scratch scratch;
  for (const auto& [text, expected] : std::vector<std::pair<std::string, std::size_t>>{{"all", 1000}, {"sample:7", 143}, {"none", 0}}) {
    const fs::path dir = scratch.dir / text.substr(0, 4);
    fs::create_directories(dir);
    RunResult r;
    r.tier = "rmai";
    r.switches.stream_to(dir, "rmai", parse_switch_selection(text, "--switches"));
    for (std::uint64_t i = 0; i < 1000; ++i) r.switches.add(record(i));
    EXPECT_FALSE(fs::exists(dir / "switches.csv")) << "visible before the results are complete";
    EXPECT_TRUE(r.switches.records().empty()) << "a streamed log keeps nothing in memory";
    write_results(dir, r, YAML::Node());
    const std::string csv = read(dir / "switches.csv");
    EXPECT_EQ(rows(csv), expected) << text;
    EXPECT_EQ(csv.substr(0, csv.find('\n') + 1), kSwitchesHeader);
    if (text == "sample:7") {  // switches 0, 7, 14, ...: the row of switch 7 (node 1, token 7, layer 7), not of 1
      EXPECT_NE(csv.find("\n1,7,7,7,rmai,"), std::string::npos);
      EXPECT_EQ(csv.find("\n1,1,1,7,rmai,"), std::string::npos);
    }
    EXPECT_EQ(nlohmann::json::parse(read(dir / "summary.json"))["expert_switches"], 1000) << text;
    for (const auto& entry : fs::directory_iterator(dir))
      EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  }
}

TEST(SwitchLog, InMemoryAndStreamedWriteTheSameFile) {
  Scratch scratch;
  RunResult streamed, in_memory;
  streamed.tier = in_memory.tier = "page4k";
  streamed.switches.stream_to(scratch.dir, "page4k", {});
  for (std::uint64_t i = 0; i < 5000; ++i) {
    streamed.switches.add(record(i));
    in_memory.switches.add(record(i));
  }
  write_results(scratch.dir, streamed, YAML::Node());
  EXPECT_EQ(read(scratch.dir / "switches.csv"), in_memory.switches.csv("page4k"));
}

std::string zstd_decompress(const std::string& compressed) {
  const auto size = ZSTD_getFrameContentSize(compressed.data(), compressed.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) return "not a zstd frame";
  // Streamed: the frame does not announce its size, so decompress it as a stream.
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> d(ZSTD_createDCtx(), ZSTD_freeDCtx);
  std::string out, chunk(ZSTD_DStreamOutSize(), '\0');
  ZSTD_inBuffer in{compressed.data(), compressed.size(), 0};
  std::size_t left = 1;
  while (in.pos < in.size) {
    ZSTD_outBuffer o{chunk.data(), chunk.size(), 0};
    left = ZSTD_decompressStream(d.get(), &o, &in);
    if (ZSTD_isError(left)) return std::string("zstd: ") + ZSTD_getErrorName(left);
    out.append(chunk.data(), o.pos);
  }
  return left == 0 ? out : "a frame cut short";
}

TEST(SwitchLog, ZstdWritesTheSameRowsCompressedAndReplacesAnEarlierPlainFile) {
  Scratch scratch;
  RunResult plain, compressed;
  plain.tier = compressed.tier = "rmai";
  const fs::path plain_dir = scratch.dir / "plain", zstd_dir = scratch.dir / "zstd";
  fs::create_directories(plain_dir);
  fs::create_directories(zstd_dir);
  posix::write_file_atomic(zstd_dir / "switches.csv", "an earlier run's\n");
  plain.switches.stream_to(plain_dir, "rmai", parse_switch_selection("sample:3", "--switches"));
  compressed.switches.stream_to(zstd_dir, "rmai", parse_switch_selection("sample:3,zstd", "--switches"));
  for (std::uint64_t i = 0; i < 200000; ++i) {  // several MiB of rows: several pieces and flushes
    plain.switches.add(record(i));
    compressed.switches.add(record(i));
  }
  EXPECT_FALSE(fs::exists(zstd_dir / "switches.csv.zst")) << "visible before the results are complete";
  write_results(plain_dir, plain, YAML::Node());
  write_results(zstd_dir, compressed, YAML::Node());
  const std::string bytes = read(zstd_dir / "switches.csv.zst");
  EXPECT_LT(bytes.size() * 4, fs::file_size(plain_dir / "switches.csv"));
  EXPECT_EQ(zstd_decompress(bytes), read(plain_dir / "switches.csv"));
  EXPECT_FALSE(fs::exists(zstd_dir / "switches.csv")) << "an earlier run's file would pass for this one's";
  EXPECT_THROW(compressed.switches.add(record(0)), std::logic_error) << "a row after the frame ended";
}

TEST(SwitchLog, AnUnwrittenLogLeavesNoTemporary) {
  Scratch scratch;
  {
    SwitchLog log;
    log.stream_to(scratch.dir, "rmai", {});
    log.add(record(1));
  }  // the run failed before write_results
  EXPECT_TRUE(fs::is_empty(scratch.dir));
}

TEST(SwitchLog, RefusesAMalformedSelection) {
  for (const std::string bad : {"", "some", "sample:", "sample:0", "sample:-3", "sample:2x", "ALL", "zstd", ",zstd",
                                 "all,", "all,gzip", "all,zstd,zstd", "sample:3,zstd,"})
    EXPECT_THROW(parse_switch_selection(bad, "--switches"), InputError) << bad;
  EXPECT_EQ(parse_switch_selection("sample:1000", "--switches").every, 1000u);
  EXPECT_FALSE(parse_switch_selection("sample:1000", "--switches").zstd);
  const auto zstd = parse_switch_selection("sample:1000,zstd", "--switches");
  EXPECT_TRUE(zstd.zstd);
  EXPECT_EQ(zstd.every, 1000u);
  EXPECT_TRUE(parse_switch_selection("none,zstd", "--switches").zstd);
}

}  // namespace
}  // namespace rmai::metrics
