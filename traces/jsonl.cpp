// Import of vLLM-style routing logs (JSON lines) into a RoutingTrace.
#include "traces/jsonl.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "config/errors.hpp"
#include "traces/line_reader.hpp"

namespace rmai::traces {
namespace {

using nlohmann::json;

// Sequence keys in order of preference: a record holding several is named by the first.
constexpr const char* kSequenceFields[] = {"problem_id", "request_id", "seq"};
constexpr std::size_t kShownDropped = 5;
constexpr std::uint32_t kMaxExperts = 65536;  // ids are stored in 16 bits

// "string \"abc\"", "number 2.5", "array [1,2]": the type and (a bounded piece of) the value.
std::string describe(const json& value) {
  constexpr std::size_t kMax = 40;
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > kMax) text = text.substr(0, kMax) + "...";
  return std::string(value.type_name()) + " " + text;
}

// How deep arrays and objects nest in `text`, outside strings, stopping at `limit + 1`: a record
// is at most three levels deep, and nlohmann's values are freed (and printed) recursively, so a
// deeper line is refused before it is parsed.
int nesting_depth(std::string_view text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) break;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}
constexpr int kMaxDepth = 8;

// nlohmann's message without its tag and without "line 1" (each record is parsed on its own).
std::string parse_message(const json::exception& error) {
  std::string text = error.what();
  if (const auto at = text.find("column "); at != std::string::npos)
    text = text.substr(at);
  else if (const auto tag = text.find("] "); tag != std::string::npos)
    text = text.substr(tag + 2);
  if (text.size() > 160) text = text.substr(0, 160) + "...";
  return text;
}

struct Record {
  std::uint32_t seq;    // in order of first appearance in the file
  std::uint32_t token;  // token_idx
  std::uint32_t layer;  // the log's layer id
  std::size_t line;
  Phase phase;
};

class Importer {
 public:
  Importer(const std::filesystem::path& path, const ImportOptions& options)
      : name_(path.string()), options_(options), reader_(path) {
    if (options_.shape) validate(*options_.shape);
    top_k_ = options_.shape ? options_.shape->top_k : 0;
  }

  ImportResult run() {
    std::string_view text;
    while (reader_.next(text)) {
      ++line_;
      if (line_ == 1 && text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 mark
      if (text.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      read_record(text);
    }
    if (line_ == 0)
      throw InputError(name_ + ":1", "empty file: expected one JSON object per line with layer, "
                                     "experts, token_idx and a sequence key");
    if (records_.empty())
      throw InputError(name_ + ":1", "no records: the file has only blank lines");
    return build();
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { fail_at(line_, what); }
  [[noreturn]] void fail_at(std::size_t line, const std::string& what) const {
    throw InputError(name_ + ":" + std::to_string(line), what);
  }

  std::string model() const { return options_.model.empty() ? "the model" : options_.model; }

  const json& required(const json& record, const char* field) const {
    const auto it = record.find(field);
    if (it == record.end())
      fail(std::string("missing field \"") + field +
           "\" (a record needs layer, experts, token_idx and problem_id, request_id or seq)");
    return *it;
  }

  std::uint64_t non_negative(const json& value, const std::string& what) const {
    if (value.is_number_unsigned()) return value.get<std::uint64_t>();
    if (value.is_number_integer()) fail(what + " is negative: " + value.dump());
    fail(what + " must be a non-negative integer, found " + describe(value));
  }

  std::uint32_t sequence(const json& record) {
    const char* field = nullptr;
    const json* key = nullptr;
    for (const char* name : kSequenceFields)
      if (const auto it = record.find(name); it != record.end()) {
        field = name;
        key = &*it;
        break;
      }
    if (!key) fail("missing the sequence key: one of \"problem_id\", \"request_id\" or \"seq\"");
    if (sequence_field_.empty()) {
      sequence_field_ = field;
      sequence_line_ = line_;
    } else if (sequence_field_ != field) {  // two namings would silently split sequences
      fail(std::string("the sequence key is \"") + field + "\" but line " +
           std::to_string(sequence_line_) + " uses \"" + sequence_field_ +
           "\": one key for the whole log");
    }
    // A string and an integer are different keys ("5" is not 5).
    std::string identity;
    if (key->is_string())
      identity = "s" + key->get<std::string>();
    else if (key->is_number_integer())
      identity = "i" + key->dump();
    else
      fail(std::string(field) + " must be a string or an integer, found " + describe(*key));
    const auto [it, added] =
        sequence_ids_.try_emplace(std::move(identity), static_cast<std::uint32_t>(names_.size()));
    if (added) names_.push_back(key->dump(-1, ' ', false, json::error_handler_t::replace));
    return it->second;
  }

  void read_experts(const json& record) {
    const json& experts = required(record, "experts");
    if (!experts.is_array())
      fail("experts must be an array of expert ids, found " + describe(experts));
    if (experts.empty()) fail("experts is empty: a record lists the experts the token was routed to");
    const std::size_t count = experts.size();
    if (options_.shape && count != top_k_)
      fail("record has " + std::to_string(count) + " experts but " + model() +
           " routes each token to " + std::to_string(top_k_) + " (top_k)");
    if (top_k_ == 0) {
      top_k_ = static_cast<std::uint32_t>(std::min<std::size_t>(count, UINT32_MAX));
      top_k_line_ = line_;
    } else if (count != top_k_) {
      fail("record has " + std::to_string(count) + " experts but line " +
           std::to_string(top_k_line_) + " has " + std::to_string(top_k_) +
           ": top_k must be the same in every record");
    }
    const std::uint32_t limit = options_.shape ? options_.shape->experts : kMaxExperts;
    const std::size_t first = experts_.size();
    // Marks of the ids seen in this record: a search per id would be quadratic in a long list.
    if (seen_.empty()) seen_.resize(kMaxExperts);
    for (std::size_t k = 0; k < count; ++k) {
      const std::uint64_t id = non_negative(experts[k], "experts[" + std::to_string(k) + "]");
      if (id >= limit)
        fail("expert " + std::to_string(id) + " out of range: " +
             (options_.shape ? model() + " has " + std::to_string(limit) + " experts per layer"
                             : std::string("expert ids are 0..65535")));
      if (seen_[id])
        fail("expert " + std::to_string(id) +
             " appears twice in experts: a token is routed to distinct experts");
      seen_[id] = true;
      experts_.push_back(static_cast<std::uint16_t>(id));
      max_expert_ = std::max<std::uint32_t>(max_expert_, static_cast<std::uint32_t>(id));
    }
    for (std::size_t k = first; k < experts_.size(); ++k) seen_[experts_[k]] = false;
  }

  void read_weights(const json& record) {
    const auto it = record.find("gating_probs");
    if (it == record.end() || it->is_null()) {  // optional
      weights_.insert(weights_.end(), top_k_, kNoWeight);
      return;
    }
    if (!it->is_array())
      fail("gating_probs must be an array of numbers, found " + describe(*it));
    if (it->size() != top_k_)
      fail("gating_probs has " + std::to_string(it->size()) + " values for " +
           std::to_string(top_k_) + " experts: one per expert");
    for (std::size_t k = 0; k < top_k_; ++k) {
      const json& value = (*it)[k];
      if (!value.is_number())
        fail("gating_probs[" + std::to_string(k) + "] must be a number, found " + describe(value));
      const double weight = value.get<double>();
      if (!(std::fabs(weight) <= std::numeric_limits<float>::max()))  // else the cast is undefined
        fail("gating_probs[" + std::to_string(k) + "] = " + value.dump() +
             " is not a finite float (out of range)");
      weights_.push_back(static_cast<float>(weight));
    }
  }

  // The optional phase: absent or null is decode.
  Phase read_phase(const json& record) const {
    const auto it = record.find("phase");
    if (it == record.end() || it->is_null()) return Phase::Decode;
    if (it->is_string())
      if (const auto phase = phase_named(it->get_ref<const std::string&>())) return *phase;
    fail("phase must be \"prefill\" or \"decode\", found " + describe(*it));
  }

  void read_record(std::string_view text) {
    // nlohmann keeps the last of two equal keys; a record saying "layer" twice is ambiguous.
    keys_.clear();
    std::string repeated;
    const auto check_keys = [&](int depth, json::parse_event_t event, json& parsed) {
      if (depth == 1 && event == json::parse_event_t::key && repeated.empty()) {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (std::find(keys_.begin(), keys_.end(), key) != keys_.end())
          repeated = key;
        else
          keys_.push_back(key);
      }
      return true;
    };
    if (nesting_depth(text, kMaxDepth) > kMaxDepth)
      fail("arrays and objects nested more than " + std::to_string(kMaxDepth) + " deep: not a routing record");
    json record;
    try {
      record = json::parse(text.begin(), text.end(), check_keys);
    } catch (const json::exception& error) {  // parse_error, or out_of_range for 1e999
      const auto last = text.find_last_not_of(" \t\r");
      if (!reader_.terminated() && text[last] != '}')
        fail("the last line is incomplete: no closing '}' (truncated file?)");
      fail("malformed JSON: " + parse_message(error));
    }
    if (!record.is_object()) fail("expected a JSON object per line, found " + describe(record));
    if (!repeated.empty()) fail("key \"" + repeated + "\" appears twice in the record");
    const std::uint32_t seq = sequence(record);
    const std::uint64_t token = non_negative(required(record, "token_idx"), "token_idx");
    if (token > UINT32_MAX)
      fail("token_idx " + std::to_string(token) + " out of range (0.." +
           std::to_string(UINT32_MAX) + ")");
    const std::uint64_t layer = non_negative(required(record, "layer"), "layer");
    if (options_.layer_id_limit != 0 && layer >= options_.layer_id_limit)
      fail("layer " + std::to_string(layer) + " out of range: " + model() + " has " +
           std::to_string(options_.layer_id_limit) + " layers (0.." +
           std::to_string(options_.layer_id_limit - 1) + ")");
    if (layer > UINT32_MAX)
      fail("layer " + std::to_string(layer) + " out of range (0.." + std::to_string(UINT32_MAX) +
           ")");
    const Phase phase = read_phase(record);
    read_experts(record);
    read_weights(record);
    records_.push_back({seq, static_cast<std::uint32_t>(token), static_cast<std::uint32_t>(layer),
                        line_, phase});
  }

  ImportResult build() {
    // Records by (sequence, token, layer); file order breaks ties so duplicates keep their order.
    std::vector<std::size_t> order(records_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    const auto key = [&](std::size_t i) {
      const Record& r = records_[i];
      return std::tuple(r.seq, r.token, r.layer, i);
    };
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return key(a) < key(b); });
    const auto same_slot = [&](std::size_t a, std::size_t b) {
      const Record& x = records_[a];
      const Record& y = records_[b];
      return x.seq == y.seq && x.token == y.token && x.layer == y.layer;
    };

    // Of all duplicates, report the one met first when reading the file, naming both lines.
    std::size_t duplicate = records_.size(), original = 0;  // record indices
    for (std::size_t i = 1, group = 0; i < order.size(); ++i) {
      if (!same_slot(order[i], order[i - 1])) {
        group = i;
        continue;
      }
      if (order[i] < duplicate) {
        duplicate = order[i];
        original = order[group];
      }
    }
    if (duplicate < records_.size()) {
      const Record& d = records_[duplicate];
      fail_at(d.line, "duplicate record: token " + std::to_string(d.token) + " of sequence " +
                          names_[d.seq] + " at layer " + std::to_string(d.layer) +
                          " is also on line " + std::to_string(records_[original].line));
    }

    ImportReport report;
    report.records = records_.size();
    report.sequence_field = sequence_field_;
    for (const Record& r : records_) report.layer_ids.push_back(r.layer);
    std::sort(report.layer_ids.begin(), report.layer_ids.end());
    report.layer_ids.erase(std::unique(report.layer_ids.begin(), report.layer_ids.end()),
                           report.layer_ids.end());
    const auto layers = static_cast<std::uint32_t>(report.layer_ids.size());
    if (options_.shape && layers != options_.shape->layers)
      throw InputError(name_, "the log has records for " + std::to_string(layers) +
                                  " distinct layers (" + id_ranges(report.layer_ids) + ") but " +
                                  model() + " has " + std::to_string(options_.shape->layers) +
                                  " MoE layers");
    if (!options_.moe_layer_ids.empty() && report.layer_ids != options_.moe_layer_ids &&
        report.layer_ids.back() + 1 != layers)
      throw InputError(name_, "the log's layer ids (" + id_ranges(report.layer_ids) + ") are neither " + model() +
                                  "'s MoE layers (" + id_ranges(options_.moe_layer_ids) + ") nor 0-" +
                                  std::to_string(layers - 1) + " (dense layers cannot carry routing)");
    const TraceShape shape =
        options_.shape ? *options_.shape : TraceShape{layers, top_k_, max_expert_ + 1};

    // A token is kept when it has every layer; since no slot repeats, that is `layers` records,
    // and sorted by layer id its j-th record is MoE layer j.
    ImportResult result{RoutingTrace(shape), {}};
    std::vector<std::uint32_t> final_seq(names_.size(), UINT32_MAX);
    Token token{};
    const Record* decoded = nullptr;  // the last kept decode token of the sequence at hand
    for (std::size_t begin = 0, end = 0; begin < order.size(); begin = end) {
      const Record& first = records_[order[begin]];
      for (end = begin + 1; end < order.size(); ++end) {
        const Record& r = records_[order[end]];
        if (r.seq != first.seq || r.token != first.token) break;
        if (r.phase != first.phase)
          fail_at(r.line, "token " + std::to_string(r.token) + " of sequence " + names_[r.seq] + " is " +
                              std::string(phase_name(r.phase)) + " here but " +
                              std::string(phase_name(first.phase)) + " on line " + std::to_string(first.line) +
                              ": all records of a token have one phase");
      }
      const std::size_t count = end - begin;
      if (count != layers) {
        if (report.first_dropped.size() < kShownDropped)
          report.first_dropped.push_back(
              {names_[first.seq], first.token, static_cast<std::uint32_t>(count)});
        ++report.tokens_dropped;
        continue;
      }
      if (final_seq[first.seq] == UINT32_MAX) {
        final_seq[first.seq] = static_cast<std::uint32_t>(report.sequences.size());
        report.sequences.push_back(names_[first.seq]);
        decoded = nullptr;  // tokens are sorted by sequence: a new one starts here
      }
      // Tokens are sorted by token_idx within a sequence: a prompt token after a decode one is
      // out of place, as in the CSV.
      if (first.phase == Phase::Prefill && decoded)
        fail_at(first.line, "prefill token " + std::to_string(first.token) + " of sequence " + names_[first.seq] +
                                " comes after its decode token " + std::to_string(decoded->token) + " (line " +
                                std::to_string(decoded->line) +
                                "): a sequence's prefill tokens (its prompt) come before its first decode token");
      if (first.phase == Phase::Decode) decoded = &first;
      token.seq = final_seq[first.seq];
      token.index = first.token;
      token.phase = first.phase;
      token.experts.clear();
      token.weights.clear();
      bool weighted = false;
      for (std::size_t j = begin; j < end; ++j) {
        const std::size_t at = order[j] * top_k_;
        token.experts.insert(token.experts.end(), experts_.begin() + at,
                             experts_.begin() + at + top_k_);
        weighted = weighted || !std::isnan(weights_[at]);
      }
      if (weighted)
        for (std::size_t j = begin; j < end; ++j) {
          const std::size_t at = order[j] * top_k_;
          token.weights.insert(token.weights.end(), weights_.begin() + at,
                               weights_.begin() + at + top_k_);
        }
      report.gating_probs = report.gating_probs || weighted;
      result.trace.append(token);
      ++report.tokens_kept;
    }
    if (report.tokens_kept == 0) {
      const auto& d = report.first_dropped.front();
      throw InputError(name_, "no complete token: each of the " +
                                  std::to_string(report.tokens_dropped) + " tokens lacks some of the " +
                                  std::to_string(layers) + " layers (" + id_ranges(report.layer_ids) +
                                  "), e.g. token " + std::to_string(d.token_idx) + " of sequence " +
                                  d.sequence + " has " + std::to_string(d.layers));
    }
    result.report = std::move(report);
    return result;
  }

  std::string name_;
  ImportOptions options_;
  LineReader reader_;
  std::size_t line_ = 0;  // 1-based number of the line being read
  std::uint32_t top_k_ = 0;
  std::size_t top_k_line_ = 0;
  std::uint32_t max_expert_ = 0;
  std::string sequence_field_;
  std::size_t sequence_line_ = 0;
  std::unordered_map<std::string, std::uint32_t> sequence_ids_;
  std::vector<std::string> names_;  // per sequence id, its key as written
  std::vector<Record> records_;
  std::vector<std::uint16_t> experts_;  // top_k per record
  std::vector<float> weights_;          // top_k per record, NaN when the record had none
  std::vector<bool> seen_;              // per expert id, in the record being read
  std::vector<std::string> keys_;       // top-level keys of the record being read
};

}  // namespace

std::string id_ranges(const std::vector<std::uint32_t>& ids) {
  constexpr std::size_t kMaxRanges = 12;
  std::string text;
  std::size_t ranges = 0;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (++ranges > kMaxRanges) return text + ", ...";
    if (!text.empty()) text += ", ";
    text += std::to_string(ids[i]);
    if (j > i) text += "-" + std::to_string(ids[j]);
    i = j + 1;
  }
  return text;
}

ImportResult import_jsonl(const std::filesystem::path& path, const ImportOptions& options) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw InputError(path.string(), "is a directory, expected a JSON-lines routing log");
  return Importer(path, options).run();
}

}  // namespace rmai::traces
