#pragma once
// A run's expert switches, taken as they happen, in memory that does not grow with the run:
// counted and summarized always, and either kept in memory (the tests, the emulator's checks) or
// streamed to switches.csv in the results directory: every row, every N-th, or none
// (`rmai run --switches`, docs/interfaces.md).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace rmai::posix {
class TemporaryFile;
}
struct ZSTD_CCtx_s;

namespace rmai::metrics {

struct Distribution {
  double mean = 0, p50 = 0, p95 = 0, p99 = 0, max = 0;
};

// Mean, max and percentiles (linear interpolation between closest ranks). Empty input: all zero.
Distribution summarize(std::vector<double> values);

// Values summarized as they come. Up to `exact_limit` values are kept and summarized exactly
// (summarize()); past that they go into a histogram of logarithmic buckets, each spanning a factor
// gamma = (1 + a) / (1 - a) with a = kRelativeError, whose representative value is within a of
// every value in it. Each percentile is then within a (relative) of the exact one, since it
// interpolates between two order statistics each within a; mean and max stay exact. Memory: the
// kept values, then one counter per bucket from the smallest value's to the largest's.
class StreamingSummary {
 public:
  static constexpr std::size_t kExactLimit = std::size_t(1) << 20;  // 8 MiB of values
  static constexpr double kRelativeError = 1e-4;

  StreamingSummary() = default;
  explicit StreamingSummary(std::size_t exact_limit) : exact_limit_(exact_limit) {}
  void add(double value);
  // Adds every value of `other` (another summary, of the same exact limit), as if added one by one
  // after these: while `other` keeps all its values they are added in their order, so that the
  // summary is the same to the last bit as one summary of them all; past its limit its histogram is
  // added, and the mean differs only by the order of the sum.
  void merge(const StreamingSummary& other);
  std::uint64_t count() const { return count_; }
  Distribution summary() const;
  // The values in the order added while all are kept (count() <= the exact limit), else empty.
  const std::vector<double>& values() const { return exact_; }

 private:
  void to_histogram(double value);
  void count_in(std::int32_t bucket, std::uint64_t n);
  double value_at(std::uint64_t rank) const;  // the rank-th smallest (0-based), within a, histogram only

  std::size_t exact_limit_ = kExactLimit;
  std::vector<double> exact_;
  // Counts of buckets first_bucket_, first_bucket_ + 1, ... once past exact_limit: a value costs
  // one index, where a map cost a search. One counter per bucket between the smallest and the
  // largest value, up to twice as many when grown downwards: about 1.5e5 (1.2 MB) for 1 ns to 1e4 s,
  // at most 1.4e7 for all positive doubles.
  std::vector<std::uint64_t> buckets_;
  std::int32_t first_bucket_ = 0;
  std::uint64_t nonpositive_ = 0;                   // values <= 0 in the histogram, taken as 0
  std::uint64_t count_ = 0;
  double sum_ = 0, max_ = 0, min_ = 0;
};

struct SwitchRecord {
  std::uint32_t node = 0;
  std::uint64_t token = 0;
  std::uint32_t layer = 0;
  std::uint32_t expert = 0;
  double start_s = 0, end_s = 0;
  double bytes = 0;
  std::uint64_t faults = 0;
  // Brought in by the prefetcher for this token and layer rather than on demand. Not a column of
  // switches.csv, whose format docs/interfaces.md fixes: summary.json counts the prefetches.
  bool prefetch = false;
};

// Which switches go into switches.csv: all, every N-th in the order they were recorded (the first
// included), or none; and whether the file is compressed with zstd (switches.csv.zst, which
// pandas.read_csv reads as it is). summary.json counts and summarizes every switch whatever the
// choice.
struct SwitchSelection {
  enum class Kind { All, Sample, None } kind = Kind::All;
  std::uint64_t every = 1;
  bool zstd = false;
};
// "all", "sample:N" (N >= 1) or "none", each optionally followed by ",zstd"; throws InputError
// naming `option`.
SwitchSelection parse_switch_selection(const std::string& text, const std::string& option);

// The name of the switch file in a results directory: switches.csv, or switches.csv.zst.
std::string switches_file_name(bool zstd);

inline constexpr const char* kSwitchesHeader = "node,token,layer,expert,tier,start_s,end_s,bytes,faults\n";

class SwitchLog {
 public:
  SwitchLog() = default;  // in memory: records() holds every switch
  // Moved, not copied: two copies of a streaming log would write its buffered rows twice.
  SwitchLog(SwitchLog&&) = default;
  SwitchLog& operator=(SwitchLog&&) = default;
  SwitchLog(const SwitchLog&) = delete;
  SwitchLog& operator=(const SwitchLog&) = delete;

  // From now on the selected rows stream into `dir`/switches.csv (or .csv.zst, compressed as they
  // go), under its temporary name until write_results commits it with the other result files;
  // records() stays empty. Throws std::runtime_error naming the file when it cannot be written (a
  // full disk).
  void stream_to(const std::filesystem::path& dir, const std::string& tier, SwitchSelection selection);

  void add(const SwitchRecord& record);

  std::uint64_t size() const { return latency_.count(); }
  bool empty() const { return size() == 0; }
  Distribution latency() const { return latency_.summary(); }
  bool streamed() const { return file_ != nullptr; }
  const std::vector<SwitchRecord>& records() const { return records_; }
  // The rows of switches.csv the records in memory make (header first), with `tier` as their tier.
  std::string csv(const std::string& tier) const;
  // The streamed file, every row written (and a compressed file's frame ended), to be committed by
  // write_results; null in memory. No row may be added after it.
  posix::TemporaryFile* file() const;

 private:
  StreamingSummary latency_;
  std::vector<SwitchRecord> records_;
  std::shared_ptr<posix::TemporaryFile> file_;
  std::shared_ptr<ZSTD_CCtx_s> zstd_;  // compresses the rows on their way to file_, or null
  mutable bool ended_ = false;         // the file is complete (file() was called)
  void flush(bool end = false) const;  // what is buffered, into the file; `end`: the last piece
  std::string tier_;
  mutable std::string buffer_;  // rows not written yet
  SwitchSelection selection_;
};

}  // namespace rmai::metrics
