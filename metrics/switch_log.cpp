#include "metrics/switch_log.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include <zstd.h>

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

void StreamingSummary::merge(const StreamingSummary& other) {
  if (&other == this) throw std::logic_error("StreamingSummary::merge of itself");
  if (other.count_ == other.exact_.size()) {
    for (const double value : other.exact_) add(value);
    return;
  }
  for (const double kept : exact_) to_histogram(kept);
  exact_.clear();
  exact_.shrink_to_fit();
  for (std::size_t i = 0; i < other.buckets_.size(); ++i)
    if (other.buckets_[i] > 0) count_in(other.first_bucket_ + static_cast<std::int32_t>(i), other.buckets_[i]);
  nonpositive_ += other.nonpositive_;
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = count_ == 0 ? other.max_ : std::max(max_, other.max_);
  sum_ += other.sum_;
  count_ += other.count_;
}

void StreamingSummary::count_in(std::int32_t bucket, std::uint64_t n) {
  if (buckets_.empty()) {
    first_bucket_ = bucket;
    buckets_.assign(1, 0);
  } else if (bucket < first_bucket_) {  // grown downwards by at least its size: amortized O(1)
    const std::int32_t grow = std::max(first_bucket_ - bucket, static_cast<std::int32_t>(buckets_.size()));
    buckets_.insert(buckets_.begin(), std::size_t(grow), 0);
    first_bucket_ -= grow;
  } else if (std::size_t(bucket - first_bucket_) >= buckets_.size()) {
    buckets_.resize(std::size_t(bucket - first_bucket_) + 1, 0);
  }
  buckets_[std::size_t(bucket - first_bucket_)] += n;
}

void StreamingSummary::to_histogram(double value) {
  if (value > 0)
    count_in(bucket_of(value), 1);
  else
    ++nonpositive_;
}

double StreamingSummary::value_at(std::uint64_t rank) const {
  if (rank < nonpositive_) return 0;
  std::uint64_t seen = nonpositive_;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (rank < seen) return std::clamp(representative(first_bucket_ + static_cast<std::int32_t>(i)), min_, max_);
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
  constexpr std::string_view kZstd = ",zstd";
  const bool zstd = text.ends_with(kZstd);
  const std::string rows = zstd ? text.substr(0, text.size() - kZstd.size()) : text;
  if (rows == "all") return {SwitchSelection::Kind::All, 1, zstd};
  if (rows == "none") return {SwitchSelection::Kind::None, 0, zstd};
  if (rows.starts_with("sample:")) {
    const std::string n = rows.substr(7);
    std::uint64_t every = 0;
    const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), every);
    if (ec == std::errc() && end == n.data() + n.size() && every >= 1)
      return {SwitchSelection::Kind::Sample, every, zstd};
  }
  throw InputError(option, "\"" + text +
                               "\" is not all, none or sample:N with N a whole number >= 1, optionally followed by ,zstd");
}

std::string switches_file_name(bool zstd) { return zstd ? "switches.csv.zst" : "switches.csv"; }

void SwitchLog::stream_to(const std::filesystem::path& dir, const std::string& tier, SwitchSelection selection) {
  file_ = std::make_shared<posix::TemporaryFile>(dir / switches_file_name(selection.zstd));
  if (selection.zstd) {
    zstd_.reset(ZSTD_createCCtx(), ZSTD_freeCCtx);
    if (!zstd_) throw std::bad_alloc();
  }
  tier_ = tier;
  selection_ = selection;
  buffer_ = kSwitchesHeader;
  flush();
}

void SwitchLog::add(const SwitchRecord& record) {
  if (ended_) throw std::logic_error("a switch recorded after its switch file was complete");
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

void SwitchLog::flush(bool end) const {
  if (!file_) return;
  if (!zstd_) {
    file_->append(buffer_);
    buffer_.clear();
    return;
  }
  std::string compressed(ZSTD_CStreamOutSize(), '\0');
  ZSTD_inBuffer in{buffer_.data(), buffer_.size(), 0};
  for (bool done = false; !done;) {
    ZSTD_outBuffer out{compressed.data(), compressed.size(), 0};
    const std::size_t left = ZSTD_compressStream2(zstd_.get(), &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
    if (ZSTD_isError(left)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(left));
    file_->append({compressed.data(), out.pos});
    done = end ? left == 0 : in.pos == in.size;
  }
  buffer_.clear();
}

posix::TemporaryFile* SwitchLog::file() const {
  if (!ended_) flush(/*end=*/true);
  ended_ = file_ != nullptr;
  return file_.get();
}

std::string SwitchLog::csv(const std::string& tier) const {
  std::string out = kSwitchesHeader;
  out.reserve(out.size() + records_.size() * 72);
  for (const auto& s : records_) put_row(out, s, tier);
  return out;
}

}  // namespace rmai::metrics
