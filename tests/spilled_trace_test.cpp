// Tests of the spilled trace (traces/spilled_trace.hpp): the nodes' stream order, what a window
// reads back, the checks of its two readings, and its file that nothing outlives.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "traces/generator.hpp"
#include "traces/spilled_trace.hpp"

namespace fs = std::filesystem;
using rmai::traces::Phase;
using rmai::traces::RoutingTrace;
using rmai::traces::SpilledTrace;
using rmai::traces::Token;
using rmai::traces::TokenWindow;
using rmai::traces::TraceShape;
using ::testing::HasSubstr;

namespace {

constexpr TraceShape kShape{3, 2, 16};

Token token(std::uint32_t seq, std::uint32_t index, std::uint16_t first, Phase phase = Phase::Decode) {
  Token t{seq, index, {}, {}, phase};
  for (std::uint32_t i = 0; i < kShape.layers * kShape.top_k; ++i) t.experts.push_back(std::uint16_t((first + i) % 16));
  return t;
}

// A source that gives `first` the first time it is opened and `second` after.
struct TwoReadings {
  std::vector<Token> first, second;
  int opened = 0;
  std::unique_ptr<rmai::traces::TraceSource> open() {
    struct Source final : rmai::traces::TraceSource {
      std::vector<Token> tokens;
      std::size_t next_ = 0;
      bool next(Token& t) override {
        if (next_ == tokens.size()) return false;
        t = tokens[next_++];
        return true;
      }
    };
    auto s = std::make_unique<Source>();
    s->tokens = opened++ == 0 ? first : second;
    return s;
  }
};

// Files in a directory, recursively.
std::size_t entries(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::recursive_directory_iterator(dir)) ++n;
  return n;
}

class Spilled : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rmai-spill-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const char* old = std::getenv("TMPDIR");
    if (old) old_ = old;
    ::setenv("TMPDIR", dir_.c_str(), 1);
  }
  void TearDown() override {
    if (old_) ::setenv("TMPDIR", old_->c_str(), 1);
    else ::unsetenv("TMPDIR");
    fs::remove_all(dir_);
  }
  fs::path dir_;
  std::optional<std::string> old_;
};

}  // namespace

// Interleaved sequences come out grouped, in order of their first token, each token with its trace
// index, phase and routing; prompts are counted per sequence.
TEST_F(Spilled, GroupsSequencesInOrderOfFirstToken) {
  RoutingTrace trace(kShape);
  const std::vector<Token> tokens{token(7, 0, 1, Phase::Prefill), token(3, 0, 2), token(7, 1, 3), token(3, 1, 4),
                                  token(9, 0, 5),                 token(7, 2, 6)};
  for (const auto& t : tokens) trace.append(t);
  const auto spilled = SpilledTrace::spill(trace);
  ASSERT_EQ(spilled.tokens(), 6u);
  ASSERT_EQ(spilled.sequences().size(), 3u);
  const std::vector<std::uint32_t> stream{0, 2, 5, 1, 3, 4};  // trace indices in stream order
  EXPECT_EQ(spilled.sequences()[0].start, 0u);
  EXPECT_EQ(spilled.sequences()[0].tokens, 3u);
  EXPECT_EQ(spilled.sequences()[0].prefill, 1u);
  EXPECT_EQ(spilled.sequences()[1].start, 3u);
  EXPECT_EQ(spilled.sequences()[1].prefill, 0u);
  EXPECT_EQ(spilled.sequences()[2].start, 5u);
  EXPECT_EQ(&spilled.sequence_at(4), &spilled.sequences()[1]);
  EXPECT_EQ(&spilled.sequence_at(5), &spilled.sequences()[2]);
  TokenWindow window;
  for (std::uint64_t from : {0, 2, 5}) {  // windows anywhere, of any size
    spilled.read(from, 6 - from, window);
    for (std::uint64_t p = from; p < 6; ++p) {
      ASSERT_TRUE(window.holds(p));
      const auto& t = tokens[stream[p]];
      EXPECT_EQ(window.trace_index(p), stream[p]);
      EXPECT_EQ(window.seq(p), t.seq);
      EXPECT_EQ(window.phase(p), t.phase);
      EXPECT_EQ(std::vector<std::uint16_t>(window.experts(p).begin(), window.experts(p).end()), t.experts);
    }
    EXPECT_FALSE(window.holds(from == 0 ? 6 : from - 1));
  }
  EXPECT_THROW(spilled.read(5, 2, window), std::out_of_range);
  EXPECT_THROW(spilled.sequence_at(6), std::out_of_range);
}

// A generated trace, long enough for several writes and many windows, reads back token for token.
TEST_F(Spilled, AGeneratedTraceReadsBack) {
  const auto generator = rmai::traces::zipf_generator({8, 2, 64}, 1.0, 0.5, 3);
  const auto trace = rmai::traces::generate(generator, 20000, 3);
  const auto spilled = SpilledTrace::spill(trace);
  ASSERT_EQ(spilled.tokens(), trace.tokens());
  TokenWindow window;
  for (std::uint64_t from = 0; from < trace.tokens(); from += 777) {
    spilled.read(from, std::min<std::uint64_t>(777, trace.tokens() - from), window);
    for (std::uint64_t p = from; p < from + window.size(); ++p) {
      ASSERT_EQ(window.trace_index(p), p);  // one sequence: the stream is the trace
      ASSERT_TRUE(std::equal(window.experts(p).begin(), window.experts(p).end(), trace.experts(p).begin()));
    }
  }
}

TEST_F(Spilled, RefusesAPromptTokenAfterDecodeTokens) {
  RoutingTrace trace(kShape);
  trace.append(token(1, 0, 0));
  trace.append(token(1, 1, 0, Phase::Prefill));
  try {
    SpilledTrace::spill(trace);
    FAIL() << "spilled";
  } catch (const std::invalid_argument& error) {
    EXPECT_THAT(error.what(), HasSubstr("sequence 1 has a prompt token after its decode tokens"));
  }
}

// The two readings must agree: more, fewer or other tokens the second time are refused.
TEST_F(Spilled, RefusesASourceThatChangesBetweenReadings) {
  const std::vector<Token> base{token(0, 0, 0), token(1, 0, 1), token(0, 1, 2)};
  auto more = base, fewer = base, other_seq = base, other_size = base, other_phase = base;
  more.push_back(token(1, 1, 3));
  fewer.pop_back();
  other_seq[1].seq = 5;
  other_size[2].experts.pop_back();
  other_phase[0].phase = Phase::Prefill;
  for (const auto& second : {more, fewer, other_seq, other_size, other_phase}) {
    TwoReadings readings{base, second};
    try {
      SpilledTrace::spill([&] { return readings.open(); }, kShape);
      ADD_FAILURE() << "spilled";
    } catch (const std::runtime_error& error) {
      EXPECT_STREQ(error.what(), "the trace changed between its two readings");
    }
    EXPECT_EQ(readings.opened, 2);
  }
}

// Expert ids index the replay's tables: one beyond the shape is refused, whatever the source.
TEST_F(Spilled, RefusesAnExpertOutOfTheShape) {
  std::vector<Token> tokens{token(0, 0, 0)};
  tokens[0].experts[3] = 16;
  TwoReadings readings{tokens, tokens};
  EXPECT_THROW(SpilledTrace::spill([&] { return readings.open(); }, kShape), std::invalid_argument);
}

// The file has no name: the temporary directory stays empty while the trace lives, and a directory
// that cannot hold it is named in the error.
TEST_F(Spilled, LeavesNoFileAndNamesADirectoryItCannotUse) {
  RoutingTrace trace(kShape);
  trace.append(token(0, 0, 0));
  {
    const auto spilled = SpilledTrace::spill(trace);
    EXPECT_EQ(entries(dir_), 0u);
  }
  ::setenv("TMPDIR", (dir_ / "missing").c_str(), 1);
  try {
    SpilledTrace::spill(trace);
    FAIL() << "spilled";
  } catch (const std::system_error& error) {
    EXPECT_THAT(error.what(), HasSubstr((dir_ / "missing").string()));
  }
}
