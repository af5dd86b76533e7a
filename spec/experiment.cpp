#include "spec/experiment.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "config/errors.hpp"
#include "spec/schemas.hpp"

namespace rmai::spec {
namespace fs = std::filesystem;

double MoeModel::resident_bytes() const {
  const double shared = double(shared_experts) * expert_bytes() * moe_layers;
  // A dense FFN has the same structure as an expert (SwiGLU: 3 matrices, T5 ReLU: 2).
  const double dense_ffn = double(expert_matrices) * hidden_size * dense_ffn_size * (layers - moe_layers) * bytes_per_param;
  return attention_params * layers * bytes_per_param + shared + dense_ffn;
}

double MoeModel::moe_layer_bytes_per_token() const {
  return attention_params * bytes_per_param + double(top_k + shared_experts) * expert_bytes();
}

double MoeModel::dense_layers_bytes_per_token() const {
  return double(layers - moe_layers) *
         (attention_params + double(expert_matrices) * hidden_size * dense_ffn_size) * bytes_per_param;
}

std::uint32_t MoeModel::moe_layer_index(std::uint32_t i) const {
  std::uint32_t layer = i;
  for (const auto dense : dense_layers)  // ascending: each dense layer at or before shifts it on
    if (dense <= layer) ++layer;
  return layer;
}

std::vector<std::uint32_t> parse_layer_list(const std::string& text, std::uint32_t layers, const std::string& where) {
  std::vector<std::uint32_t> out;
  if (text == "none") return out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    unsigned first = 0, last = 0;
    char dash = 0, extra = 0;
    const int got = std::sscanf(item.c_str(), "%u%c%u%c", &first, &dash, &last, &extra);
    if (got == 1 && item.find_first_not_of("0123456789") == std::string::npos) {
      last = first;
    } else if (got != 3 || dash != '-' || first > last || item.find_first_not_of("0123456789-") != std::string::npos) {
      throw InputError(where, "'" + item + "' is not a layer index or range like 0-2 (in \"" + text + "\")");
    }
    if (last >= layers) throw InputError(where, "layer " + std::to_string(last) + " beyond the " + std::to_string(layers) + " layers");
    for (unsigned l = first; l <= last; ++l) out.push_back(l);
    start = end + 1;
  }
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end()) throw InputError(where, "a layer is listed twice");
  return out;
}

namespace {

double dtype_bytes(const std::string& dtype) {
  if (dtype == "fp8") return 1.0;
  if (dtype == "mxfp4") return 4.25 / 8;  // 4-bit values plus one 8-bit scale per 32 values
  return 2.0;                             // bf16, fp16
}

Platform platform_of(const config::Values& v) {
  Platform p;
  p.preset = v.preset();
  p.memory_servers = static_cast<std::uint32_t>(v.count("memory_servers"));
  p.server_memory = v.number("server_memory");
  const auto& nic = v.child("nic");
  p.nic = {nic.number("bandwidth"), nic.number("latency"), nic.number("op_overhead"), nic.number("wakeup")};
  const auto& pcie = v.child("pcie");
  p.pcie = {pcie.number("bandwidth"), pcie.number("latency"), pcie.number("flow_bandwidth")};
  const auto& dram = v.child("dram");
  p.dram.bandwidth = dram.number("bandwidth");
  p.dram.latency = dram.number("latency");
  p.dram.flow_bandwidth = dram.number("flow_bandwidth");
  p.dram.capacity = dram.number("capacity");
  const auto& gpu = v.child("gpu");
  p.gpu = {gpu.number("hbm_capacity"),      gpu.number("hbm_bandwidth"),      gpu.number("flops"),
           gpu.number("memory_efficiency"), gpu.number("compute_efficiency"), gpu.number("copy_launch")};
  const auto& cxl = v.child("cxl");
  p.cxl = {cxl.number("bandwidth"), cxl.number("latency"), cxl.number("capacity")};
  const auto& pool = v.child("cxl_pool");
  p.cxl_pool = {pool.number("bandwidth"), pool.number("latency"), pool.number("capacity"),
                static_cast<std::uint32_t>(pool.count("ports"))};
  const auto& nvme = v.child("nvme");
  p.nvme = {nvme.number("read_bandwidth"), nvme.number("read_latency"), nvme.number("capacity")};
  const auto& os = v.child("os");
  p.os = {os.number("page_size"),      os.number("fault_trap"),     os.number("fault_handler"),
          os.number("region_lookup"),  os.number("pte_install"),    os.number("huge_page_size"),
          os.number("huge_map"),       os.number("swap_in_path"),   os.number("syscall"),
          os.number("page_cache_insert"), os.number("tlb_shootdown")};
  const auto& prices = v.child("prices");
  p.prices = {prices.preset(),
              prices.number("dram_per_gb"),
              prices.number("cxl_device"),
              prices.number("cxl_device_capacity"),
              prices.number("cxl_pool_port"),
              prices.number("rdma_nic"),
              prices.number("memory_server"),
              prices.number("nvme_per_gb"),
              prices.number("gpu_node"),
              prices.number("amortization_years")};
  return p;
}

// A relative trace path is looked up beside the experiment file, then in the current directory,
// then in the project's home, so experiments can name shipped traces either way.
fs::path find_file(const std::string& given, const std::string& where, const fs::path& experiment,
                   const std::string& what) {
  const fs::path path(given);
  std::vector<fs::path> candidates;
  if (path.is_absolute()) {
    candidates.push_back(path);
  } else {
    if (!experiment.empty() && where.rfind("--set", 0) != 0) candidates.push_back(experiment.parent_path() / path);
    candidates.push_back(fs::current_path() / path);
    candidates.push_back(config::home_dir() / path);
  }
  for (const auto& candidate : candidates)
    if (fs::is_regular_file(candidate)) return candidate.lexically_normal();
  std::vector<std::string> tried;
  for (const auto& candidate : candidates) tried.push_back(candidate.lexically_normal().string());
  throw InputError(where, what + " file not found (tried " + config::join(tried) + ")");
}

// The name becomes a directory under results/ when --out is omitted: one plain path component.
void check_name(const std::string& name, const std::string& where) {
  const auto bad = std::find_if(name.begin(), name.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || bad != name.end() || name.size() > 128)
    throw InputError(where, "the experiment name must be one file name (no '/', no control characters, not '.' or "
                            "'..', at most 128 characters): results go to results/<name>");
}

}  // namespace

fs::path find_generator(const std::string& given, const std::string& where, const fs::path& experiment) {
  if (given.find('/') != std::string::npos || given.ends_with(".yaml")) return find_file(given, where, experiment, "generator");
  const fs::path preset = config::preset_file("synthetic", given);
  if (preset.empty())
    throw InputError(where, "unknown generator \"" + given + "\" (presets: " + config::join(config::preset_names("synthetic")) +
                                "; or give a GEN.yaml path)");
  return preset;
}

MoeModel load_model(const std::string& name, const std::string& where) {
  const fs::path file = config::preset_file("moe", name);
  if (file.empty())
    throw InputError(where, "unknown model \"" + name + "\" (available: " + config::join(config::preset_names("moe")) + ")");
  const auto v = config::resolve(schema::moe_model(), {config::Layer{config::load_yaml_file(file), file.string()}}, "model");
  MoeModel m;
  m.name = name;
  m.layers = static_cast<std::uint32_t>(v.count("layers"));
  m.moe_layers = static_cast<std::uint32_t>(v.count("moe_layers"));
  m.experts = static_cast<std::uint32_t>(v.count("experts"));
  m.shared_experts = static_cast<std::uint32_t>(v.count("shared_experts"));
  m.top_k = static_cast<std::uint32_t>(v.count("top_k"));
  m.hidden_size = v.count("hidden_size");
  m.expert_ffn_size = v.count("expert_ffn_size");
  m.expert_matrices = static_cast<std::uint32_t>(v.count("expert_matrices"));
  m.bytes_per_param = dtype_bytes(v.text("dtype"));
  m.dense_ffn_size = v.count("dense_ffn_size");
  m.attention_heads = static_cast<std::uint32_t>(v.count("attention_heads"));
  m.head_dim = static_cast<std::uint32_t>(v.count("head_dim"));
  const double kv_values = v.has("kv_cache_values") ? double(v.count("kv_cache_values"))
                                                     : 2.0 * double(v.count("kv_heads")) * m.head_dim;  // K and V
  m.kv_cache_bytes = kv_values * dtype_bytes(v.text("kv_dtype"));
  if (v.has("attention_params")) {
    m.attention_params = v.number("attention_params");
  } else {  // grouped-query attention: q and o projections, k and v for the kv heads
    const double q = double(v.count("attention_heads")) * v.count("head_dim");
    const double kv = double(v.count("kv_heads")) * v.count("head_dim");
    m.attention_params = double(m.hidden_size) * (2 * q + 2 * kv);
  }
  if (m.moe_layers > m.layers) throw InputError(v.where("moe_layers"), "more MoE layers than layers");
  m.dense_layers = parse_layer_list(v.text("dense_layers"), m.layers, v.where("dense_layers"));
  if (m.dense_layers.size() + m.moe_layers != m.layers)
    throw InputError(v.where("moe_layers"), std::to_string(m.moe_layers) + " MoE layers and " +
                                                std::to_string(m.dense_layers.size()) + " dense_layers do not make the " +
                                                std::to_string(m.layers) + " layers");
  if (m.top_k > m.experts) throw InputError(v.where("top_k"), "top_k exceeds the number of experts");
  if (m.experts > 65536) throw InputError(v.where("experts"), "at most 65536 experts per layer are supported");
  return m;
}

Experiment load_experiment(const fs::path& file, const std::vector<std::string>& sets) {
  YAML::Node root = config::load_yaml_file(file);
  if (root.IsNull()) root = YAML::Load("{}");  // an empty file: an empty map, positioned at line 1
  if (!root.IsMap()) throw InputError(config::location(file.string(), root, ""), "an experiment must be a YAML map");
  root.remove("provenance");  // written by rmai into config.resolved.yaml; informative only
  root.remove("sweep");  // the sweep and quick blocks are read by rmai sweep (sweep.hpp), not by one run
  root.remove("quick");
  for (const auto& set : sets) config::apply_set(root, set);

  Experiment e;
  e.source = file.string();
  e.values = config::resolve(schema::experiment(), {config::Layer{root, file.string()}}, "");
  const auto& v = e.values;
  e.name = v.has("name") ? v.text("name") : file.stem().string();
  check_name(e.name, v.has("name") ? v.where("name") : file.string());
  e.mode = v.text("mode");
  e.seed = static_cast<std::uint64_t>(v.integer("seed"));
  e.nodes = static_cast<std::uint32_t>(v.count("nodes"));
  e.model = load_model(v.text("model"), v.where("model"));
  e.platform = platform_of(v.child("platform"));
  const auto& memory = v.child("memory");
  e.tier = memory.text("tier");
  e.tier_definition = find_tier(e.tier);  // the schema accepted only defined tiers
  e.tier_params = memory.child(e.tier);
  const auto& cache = v.child("cache");
  const auto& emul = v.child("emul");
  e.emul.scale = emul.number("scale");
  if (e.emul.scale > 1) throw InputError(emul.where("scale"), "must be at most 1 (a fraction of each expert)");
  e.emul.layers = emul.text("layers");
  if (e.emul.layers != "all") e.emul.layer_list = parse_layer_list(e.emul.layers, e.model.moe_layers, emul.where("layers"));
  e.emul.granularity = emul.text("granularity");
  e.emul.batch_pages = emul.count("batch_pages");
  e.emul.layout = emul.text("layout");
  e.emul.provider = emul.text("provider");
  if (emul.has("server")) e.emul.server = emul.text("server");
  if (emul.has("secret_file")) e.emul.secret_file = emul.text("secret_file");
  e.emul.timeout_s = emul.number("timeout");
  e.emul.scratch_dir = emul.has("scratch_dir") ? emul.text("scratch_dir") : "/var/tmp";
  e.fast_path = v.child("sim").text("fast_path") == "true";
  e.simulate_emulated = v.text("experts") == "emulated";
  if (e.simulate_emulated && e.mode == "sim") e.model.expert_scale = e.emul.scale;  // emul scales its own objects
  if (e.simulate_emulated && !e.emul.layer_list.empty() && cache.text("prefetch") != "none")
    throw InputError(v.where("experts"), "a prefetcher needs every layer: experts: emulated with emul.layers takes cache.prefetch: none");
  e.cache = {cache.count("gpu_experts"), cache.text("policy"), cache.text("prefetch"),
             cache.has("prefetch_depth") ? cache.count("prefetch_depth") : 0, cache.count("host_experts"),
             cache.text("host_policy")};
  const auto& serving = v.child("serving");
  e.serving.batch = static_cast<std::uint32_t>(serving.count("batch"));
  e.serving.prompt = serving.count("prompt");
  e.serving.context = serving.count("context");
  e.serving.concurrency = static_cast<std::uint32_t>(e.tier_params.count("concurrency"));
  if (e.cache.prefetch_depth == 0) e.cache.prefetch_depth = e.model.top_k;
  const auto& trace = v.child("trace");
  if (trace.has("file")) e.trace.file = find_file(trace.text("file"), trace.where("file"), file, "trace");
  e.trace.tokens = trace.count("tokens");
  e.trace.sequences = static_cast<std::uint32_t>(trace.count("sequences"));
  e.trace.seed = trace.has("seed") ? static_cast<std::uint64_t>(trace.integer("seed")) : e.seed;
  e.trace.generator = find_generator(trace.text("generator"), trace.where("generator"), file);
  if (!e.trace.file) {
    // Prompt tokens are drawn besides the decode tokens, serving.prompt per sequence.
    const double tokens = double(e.trace.tokens) + double(e.serving.prompt) * e.trace.sequences;
    const double entries = tokens * e.model.moe_layers * e.model.top_k;
    if (entries > kMaxTraceEntries)
      throw InputError(trace.where("tokens"), std::to_string(std::uint64_t(tokens)) + " tokens of " + e.model.name + " are " +
                                                  std::to_string(std::uint64_t(entries)) + " routed experts: a run holds at most " +
                                                  std::to_string(std::uint64_t(kMaxTraceEntries)) + " (256 MiB) in memory");
    if (e.trace.sequences > e.trace.tokens)
      throw InputError(trace.where("sequences"), "more sequences than tokens");
  }
  check_consistency(e);
  return e;
}

namespace {

// The serving model's cross-checks: what the batch, the prompt and the host cache ask of the GPU
// cache, the host's memory and the tier.
void check_serving(const Experiment& e) {
  const auto& cache = e.values.child("cache");
  const auto& serving = e.values.child("serving");
  const auto& m = e.model;
  // A step computes a layer once the union of its tokens' experts is resident.
  const auto union_bound = [&](std::uint64_t tokens) { return std::min<std::uint64_t>(m.experts, tokens * m.top_k); };
  const std::uint64_t decode_union = union_bound(e.serving.batch);
  if (e.cache.gpu_experts < decode_union)
    throw InputError(cache.where("gpu_experts"), "a decode step of serving.batch = " + std::to_string(e.serving.batch) +
                                                     " tokens may need " + std::to_string(decode_union) +
                                                     " experts of one layer at once: at least that many slots");
  if (e.serving.prompt > 0 && e.cache.gpu_experts < union_bound(e.serving.prompt))
    throw InputError(cache.where("gpu_experts"), "a prefill step of serving.prompt = " + std::to_string(e.serving.prompt) +
                                                     " tokens may need " + std::to_string(union_bound(e.serving.prompt)) +
                                                     " experts of one layer at once: at least that many slots");
  // The prefetchers predict for one decode token and fetch past the host cache.
  if (e.serving.batch > 1 && e.cache.prefetch != "none")
    throw InputError(serving.where("batch"), "the prefetchers predict for one token: batch > 1 takes cache.prefetch: none");
  if (e.serving.prompt > 0 && e.cache.prefetch != "none")
    throw InputError(serving.where("prompt"), "the prefetchers predict for decode tokens: a prompt takes cache.prefetch: none");
  if (e.cache.host_experts > 0 && e.cache.prefetch != "none")
    throw InputError(cache.where("host_experts"), "the prefetchers fetch from the tier, not through a host cache: "
                                                  "host_experts > 0 takes cache.prefetch: none");
  if (e.serving.concurrency > 1 && e.cache.prefetch != "none")
    throw InputError(e.tier_params.where("concurrency"), "the prefetchers run beside one faulting thread: concurrency > 1 "
                                                         "takes cache.prefetch: none");
  if (e.serving.prompt > 0 && e.trace.file)
    throw InputError(serving.where("prompt"), "prompts are drawn for synthetic traces; a trace file marks its prompt "
                                              "tokens itself (the phase column)");
  if (e.cache.host_experts == 0) return;
  const std::uint64_t routed = m.routed_experts_total();
  if (e.cache.host_experts > routed)
    throw InputError(cache.where("host_experts"), std::to_string(e.cache.host_experts) + " slots but " + m.name + " has " +
                                                      std::to_string(routed) + " routed experts");
  if (e.cache.host_experts < decode_union)
    throw InputError(cache.where("host_experts"), "a decode step may bring " + std::to_string(decode_union) +
                                                      " experts of one layer through the host cache at once: at least that many slots");
  const double host_bytes = double(e.cache.host_experts) * m.expert_bytes();
  if (host_bytes > e.platform.dram.capacity)
    throw InputError(cache.where("host_experts"), "larger than host DRAM: " + std::to_string(e.cache.host_experts) +
                                                      " experts are " + std::to_string(host_bytes / 1e9) +
                                                      " GB, platform.dram.capacity is " +
                                                      std::to_string(e.platform.dram.capacity / 1e9) + " GB");
  if (e.tier_definition->medium != Medium::RemotePool && e.tier_definition->medium != Medium::Nvme)
    throw InputError(cache.where("host_experts"), "tier " + e.tier + " is copied to the GPU straight from where it lives: "
                                                  "a host cache applies to the tiers that fetch into host memory "
                                                  "(remote-pool and nvme media)");
}

}  // namespace

void check_consistency(const Experiment& e) {
  const auto& cache = e.values.child("cache");
  const auto& m = e.model;
  const std::uint64_t routed = m.routed_experts_total();
  if (e.cache.gpu_experts > routed)
    throw InputError(cache.where("gpu_experts"), "cache larger than the model: " + std::to_string(e.cache.gpu_experts) +
                                                     " slots but " + m.name + " has " + std::to_string(routed) +
                                                     " routed experts");
  if (e.cache.gpu_experts < m.top_k)
    throw InputError(cache.where("gpu_experts"), "the cache must hold at least one layer's top-k (" +
                                                     std::to_string(m.top_k) + ") experts");
  if (e.cache.prefetch != "none") {
    // A completed prefetch may evict neither the current layer's experts nor the other prefetches
    // waiting for the next layer: the cache needs top_k + depth slots.
    if (e.cache.prefetch_depth > m.experts)
      throw InputError(cache.where("prefetch_depth"), "more than the " + std::to_string(m.experts) +
                                                          " experts of a layer");
    if (e.cache.gpu_experts < m.top_k + e.cache.prefetch_depth)
      throw InputError(cache.where("gpu_experts"), "prefetching " + std::to_string(e.cache.prefetch_depth) +
                                                       " experts needs at least top_k + prefetch_depth = " +
                                                       std::to_string(m.top_k + e.cache.prefetch_depth) + " slots");
  }
  check_serving(e);
  const auto& platform = e.values.child("platform");
  // A tier that chooses its mapping page (rmai's map_page) can have only what the MMU maps.
  if (e.tier_params.has("map_page")) {
    const double page = e.tier_params.number("map_page");
    if (page != e.platform.os.page_size && page != e.platform.os.huge_page_size)
      throw InputError(e.tier_params.where("map_page"),
                       "must be the platform's os.page_size or os.huge_page_size (" +
                           std::to_string(std::uint64_t(e.platform.os.page_size)) + " or " +
                           std::to_string(std::uint64_t(e.platform.os.huge_page_size)) + " bytes)");
  }
  const double hbm_needed = m.resident_bytes() + double(e.cache.gpu_experts) * m.expert_bytes();
  if (hbm_needed > e.platform.gpu.hbm_capacity)
    throw InputError(cache.where("gpu_experts"),
                     "does not fit in HBM: resident weights plus " + std::to_string(e.cache.gpu_experts) +
                         " expert slots need " + std::to_string(hbm_needed / 1e9) + " GB, the GPU has " +
                         std::to_string(e.platform.gpu.hbm_capacity / 1e9) + " GB");
  const double expert_bytes_total = double(routed) * m.expert_bytes();
  const auto need = [&](double capacity, const std::string& where, const std::string& what) {
    if (expert_bytes_total > capacity)
      throw InputError(where, what + " too small for " + m.name + ": " + std::to_string(expert_bytes_total / 1e9) +
                                  " GB of experts, " + std::to_string(capacity / 1e9) + " GB available");
  };
  switch (e.tier_definition->medium) {
    case Medium::HostDram: need(e.platform.dram.capacity, platform.child("dram").where("capacity"), "host DRAM"); break;
    case Medium::CxlDevices: need(e.platform.cxl.capacity, platform.child("cxl").where("capacity"), "CXL expander"); break;
    case Medium::CxlPool: need(e.platform.cxl_pool.capacity, platform.child("cxl_pool").where("capacity"), "CXL pool"); break;
    case Medium::RemotePool:
      need(e.platform.server_memory * e.platform.memory_servers, platform.where("server_memory"), "memory pool");
      break;
    case Medium::Nvme: need(e.platform.nvme.capacity, platform.child("nvme").where("capacity"), "NVMe drive"); break;
  }
}

bool Experiment::replays_layer(std::uint32_t layer) const {
  if (mode == "sim" && !simulate_emulated) return true;
  return emul.layer_list.empty() || std::binary_search(emul.layer_list.begin(), emul.layer_list.end(), layer);
}

}  // namespace rmai::spec
