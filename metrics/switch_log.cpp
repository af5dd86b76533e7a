#include "metrics/switch_log.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <numeric>

#include "config/errors.hpp"
#include "posix/files.hpp"

namespace rmai::metrics {
namespace {

// Appends a number in its shortest round-trip form: fast and identical run to run.
template <class T>
void put(std::string& out, T value) {
  std::array<char, 32> buffer{};
  auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  out.append(buffer.data(), end);
}

void put_row(std::string& out, const SwitchRecord& s, const std::string& tier) {
  put(out, s.node), out += ',';
  put(out, s.token), out += ',';
  put(out, s.layer), out += ',';
  put(out, s.expert), out += ',';
  out += tier, out += ',';
  put(out, s.start_s), out += ',';
  put(out, s.end_s), out += ',';
  put(out, s.bytes), out += ',';
  put(out, s.faults), out += '\n';
}

constexpr std::size_t kFlushBytes = std::size_t(1) << 20;  // written in pieces of about 1 MiB

const double kLogGamma = std::log((1 + StreamingSummary::kRelativeError) / (1 - StreamingSummary::kRelativeError));

// Bucket i holds (gamma^(i-1), gamma^i]; its representative 2 gamma^i / (gamma + 1) is within
// kRelativeError of both ends.
std::int32_t bucket_of(double value) { return static_cast<std::int32_t>(std::ceil(std::log(value) / kLogGamma)); }
double representative(std::int32_t bucket) {
  const double gamma = std::exp(kLogGamma);
  return 2 * std::exp(kLogGamma * bucket) / (gamma + 1);
}

}  // namespace

Distribution summarize(std::vector<double> values) {
  Distribution d;
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  const auto quantile = [&](double q) {
    const double rank = q * double(values.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(rank));
    const std::size_t hi = std::min(lo + 1, values.size() - 1);
    return values[lo] + (values[hi] - values[lo]) * (rank - double(lo));
  };
  d.mean = std::accumulate(values.begin(), values.end(), 0.0) / double(values.size());
  d.p50 = quantile(0.50);
  d.p95 = quantile(0.95);
  d.p99 = quantile(0.99);
  d.max = values.back();
  return d;
}

void StreamingSummary::add(double value) {
  min_ = count_ == 0 ? value : std::min(min_, value);
  max_ = count_ == 0 ? value : std::max(max_, value);
  sum_ += value;
  ++count_;
  if (buckets_.empty() && nonpositive_ == 0 && exact_.size() < exact_limit_) {
    exact_.push_back(value);
    return;
  }
  for (const double kept : exact_) to_histogram(kept);  // the first value past the limit
  exact_.clear();
  exact_.shrink_to_fit();
  to_histogram(value);
}

void StreamingSummary::to_histogram(double value) {
  if (value > 0)
    ++buckets_[bucket_of(value)];
  else
    ++nonpositive_;
}

double StreamingSummary::value_at(std::uint64_t rank) const {
  if (rank < nonpositive_) return 0;
  std::uint64_t seen = nonpositive_;
  for (const auto& [bucket, n] : buckets_) {
    seen += n;
    if (rank < seen) return std::clamp(representative(bucket), min_, max_);
  }
  return max_;
}

Distribution StreamingSummary::summary() const {
  if (count_ == exact_.size()) return summarize(exact_);
  Distribution d;
  const auto quantile = [&](double q) {
    const double rank = q * double(count_ - 1);
    const auto lo = static_cast<std::uint64_t>(std::floor(rank));
    const std::uint64_t hi = std::min(lo + 1, count_ - 1);
    const double a = value_at(lo), b = value_at(hi);
    return a + (b - a) * (rank - double(lo));
  };
  d.mean = sum_ / double(count_);
  d.p50 = quantile(0.50);
  d.p95 = quantile(0.95);
  d.p99 = quantile(0.99);
  d.max = max_;
  return d;
}

SwitchSelection parse_switch_selection(const std::string& text, const std::string& option) {
  if (text == "all") return {SwitchSelection::Kind::All, 1};
  if (text == "none") return {SwitchSelection::Kind::None, 0};
  if (text.starts_with("sample:")) {
    const std::string n = text.substr(7);
    std::uint64_t every = 0;
    const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), every);
    if (ec == std::errc() && end == n.data() + n.size() && every >= 1) return {SwitchSelection::Kind::Sample, every};
  }
  throw InputError(option, "\"" + text + "\" is not all, none or sample:N with N a whole number >= 1");
}

void SwitchLog::stream_to(const std::filesystem::path& dir, const std::string& tier, SwitchSelection selection) {
  file_ = std::make_shared<posix::TemporaryFile>(dir / "switches.csv");
  tier_ = tier;
  selection_ = selection;
  buffer_ = kSwitchesHeader;
  flush();
}

void SwitchLog::add(const SwitchRecord& record) {
  const std::uint64_t index = size();
  latency_.add(record.end_s - record.start_s);
  if (!file_) {
    records_.push_back(record);
    return;
  }
  if (selection_.kind == SwitchSelection::Kind::None) return;
  if (selection_.kind == SwitchSelection::Kind::Sample && index % selection_.every != 0) return;
  put_row(buffer_, record, tier_);
  if (buffer_.size() >= kFlushBytes) flush();
}

void SwitchLog::flush() const {
  if (!file_) return;
  file_->append(buffer_);
  buffer_.clear();
}

posix::TemporaryFile* SwitchLog::file() const {
  flush();
  return file_.get();
}

std::string SwitchLog::csv(const std::string& tier) const {
  std::string out = kSwitchesHeader;
  out.reserve(out.size() + records_.size() * 72);
  for (const auto& s : records_) put_row(out, s, tier);
  return out;
}

}  // namespace rmai::metrics
