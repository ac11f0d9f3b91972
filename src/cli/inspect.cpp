// `qwenvl inspect --model DIR [--json]`: what a checkpoint holds and the memory it needs. Reads
// config.json and the safetensors headers only (the data stays mapped, untouched), so it answers
// at once even for a 70 GB checkpoint. With only config.json present it reports the sizes the
// config implies and says the weights are absent.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"
#include "checkpoint/model_size.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "runtime/model_modules.h"

namespace qwenvl::cli {

namespace {

constexpr const char* kUsage =
    "usage: qwenvl inspect --model DIR [--json] [--quantize fp8]\n"
    "  Summarises a Qwen2.5-VL checkpoint: architecture, parameter counts, bytes on disk per\n"
    "  dtype, bf16 weight memory and KV-cache bytes per 1000 tokens. Reads headers only.\n"
    "  --quantize fp8   the weight memory with the language model's projections as FP8\n";

constexpr int64_t kTokensPerK = 1000;

struct Report {
  std::string dir;
  ModelConfig config;
  ParameterCounts params;
  bool weights_present = false;
  size_t files = 0;
  std::map<DType, size_t> disk_bytes;
  int64_t loaded_bytes = 0;  // weights as a bf16 device holds them (AWQ projections packed,
                             // --quantize fp8 projections as FP8)
};

std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1'000'000'000)
    std::snprintf(buf, sizeof buf, "%.2fB", double(n) / 1e9);
  else if (n >= 1'000'000)
    std::snprintf(buf, sizeof buf, "%.1fM", double(n) / 1e6);
  else if (n >= 1'000)
    std::snprintf(buf, sizeof buf, "%.1fK", double(n) / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%lld", (long long)n);
  return buf;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) bytes /= 1024.0, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

void print_text(const Report& r) {
  const TextConfig& t = r.config.text;
  const VisionConfig& v = r.config.vision;
  int64_t bf16_bytes = r.params.total() * 2;
  int64_t kv_per_k = kv_cache_bytes_per_token(r.config, DType::BF16) * kTokensPerK;
  std::printf("model       %s (%s, config dtype %s)\n", r.dir.c_str(), r.config.model_type.c_str(),
              r.config.torch_dtype.c_str());
  std::printf(
      "text        %d layers, hidden %d, intermediate %d, %d heads / %d kv heads, "
      "head_dim %d, vocab %d, embeddings %s\n",
      t.num_hidden_layers, t.hidden_size, t.intermediate_size, t.num_attention_heads,
      t.num_key_value_heads, t.head_dim, t.vocab_size, t.tie_word_embeddings ? "tied" : "untied");
  std::printf("            rope_theta %g, mrope_section [%s], max positions %d\n", t.rope_theta,
              join(t.mrope_section).c_str(), t.max_position_embeddings);
  std::printf(
      "vision      %d blocks, hidden %d, intermediate %d, %d heads, patch %d, merge %d, "
      "window %d px, full attention in blocks [%s]\n",
      v.depth, v.hidden_size, v.intermediate_size, v.num_heads, v.patch_size, v.spatial_merge_size,
      v.window_size, join(v.fullatt_block_indexes).c_str());
  std::printf("parameters  vision %s, language %s, lm_head %s, total %s (%lld)\n",
              human_count(r.params.vision).c_str(), human_count(r.params.language).c_str(),
              r.params.lm_head ? human_count(r.params.lm_head).c_str() : "tied",
              human_count(r.params.total()).c_str(), (long long)r.params.total());
  if (r.weights_present) {
    std::string per_dtype;
    size_t total = 0;
    for (const auto& [dtype, bytes] : r.disk_bytes) {
      per_dtype += (per_dtype.empty() ? "" : ", ") + std::string(dtype_name(dtype)) + " " +
                   human_bytes(double(bytes));
      total += bytes;
    }
    std::printf("on disk     %zu file%s, %s (%s)\n", r.files, r.files == 1 ? "" : "s",
                human_bytes(double(total)).c_str(), per_dtype.c_str());
  } else {
    std::printf(
        "on disk     weights absent (only config.json); counts above are from the config\n");
  }
  if (r.config.quantization.awq())
    std::printf(
        "memory      weights %s (AWQ 4-bit projections, group %lld, the rest bf16); KV cache in "
        "bf16 %s per 1k tokens\n",
        human_bytes(double(r.loaded_bytes)).c_str(), (long long)r.config.quantization.group_size,
        human_bytes(double(kv_per_k)).c_str());
  else if (r.config.quantization.fp8_at_load)
    std::printf(
        "memory      weights %s (--quantize fp8: FP8 E4M3 projections, per-channel scales, the "
        "rest bf16); KV cache in bf16 %s per 1k tokens\n",
        human_bytes(double(r.loaded_bytes)).c_str(), human_bytes(double(kv_per_k)).c_str());
  else
    std::printf("memory      weights in bf16 %s; KV cache in bf16 %s per 1k tokens\n",
                human_bytes(double(bf16_bytes)).c_str(), human_bytes(double(kv_per_k)).c_str());
}

void print_json(const Report& r) {
  const TextConfig& t = r.config.text;
  const VisionConfig& v = r.config.vision;
  nlohmann::ordered_json j;
  j["model_dir"] = r.dir;
  j["model_type"] = r.config.model_type;
  j["config_dtype"] = r.config.torch_dtype;
  j["text"] = {{"layers", t.num_hidden_layers},
               {"hidden_size", t.hidden_size},
               {"intermediate_size", t.intermediate_size},
               {"attention_heads", t.num_attention_heads},
               {"kv_heads", t.num_key_value_heads},
               {"head_dim", t.head_dim},
               {"vocab_size", t.vocab_size},
               {"tie_word_embeddings", t.tie_word_embeddings},
               {"rope_theta", t.rope_theta},
               {"mrope_section", t.mrope_section},
               {"max_position_embeddings", t.max_position_embeddings}};
  j["vision"] = {{"depth", v.depth},
                 {"hidden_size", v.hidden_size},
                 {"intermediate_size", v.intermediate_size},
                 {"heads", v.num_heads},
                 {"patch_size", v.patch_size},
                 {"spatial_merge_size", v.spatial_merge_size},
                 {"window_size", v.window_size},
                 {"fullatt_block_indexes", v.fullatt_block_indexes},
                 {"out_hidden_size", v.out_hidden_size}};
  j["parameters"] = {{"vision", r.params.vision},
                     {"language", r.params.language},
                     {"lm_head", r.params.lm_head},
                     {"total", r.params.total()}};
  nlohmann::ordered_json weights = {{"present", r.weights_present}};
  if (r.weights_present) {
    nlohmann::ordered_json by_dtype = nlohmann::ordered_json::object();
    size_t total = 0;
    for (const auto& [dtype, bytes] : r.disk_bytes) {
      by_dtype[std::string(dtype_name(dtype))] = bytes;
      total += bytes;
    }
    weights["files"] = r.files;
    weights["bytes_by_dtype"] = by_dtype;
    weights["total_bytes"] = total;
  }
  j["weights"] = weights;
  j["bf16_weight_bytes"] = r.params.total() * 2;
  if (r.config.quantization.awq())
    j["quantization"] = {{"method", "awq"},
                         {"bits", r.config.quantization.bits},
                         {"group_size", r.config.quantization.group_size},
                         {"loaded_weight_bytes", r.loaded_bytes}};
  else if (r.config.quantization.fp8_at_load)
    j["quantization"] = {{"method", "fp8"},
                         {"format", "e4m3"},
                         {"scales", "per output channel"},
                         {"loaded_weight_bytes", r.loaded_bytes}};
  j["kv_cache_bytes_per_token_bf16"] = kv_cache_bytes_per_token(r.config, DType::BF16);
  j["kv_cache_bytes_per_1k_tokens_bf16"] =
      kv_cache_bytes_per_token(r.config, DType::BF16) * kTokensPerK;
  std::printf("%s\n", j.dump(2).c_str());
}

}  // namespace

int run_inspect(int argc, char** argv) {
  Args args(argc, argv, {"model", "quantize"}, {"json", "help"});
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args.positional().empty())
    fail("unexpected argument '", args.positional().front(), "' (usage: inspect --model DIR)");
  Report r;
  r.dir = args.require("model");
  std::error_code ec;
  if (!std::filesystem::is_directory(r.dir, ec))
    fail("model directory ", r.dir, " does not exist or is not a directory");
  r.config = load_model_config(r.dir);
  apply_quantize_option(r.config.quantization, args.get("quantize").value_or(""));
  r.params = count_parameters(r.config);
  for (const ModelModule& m : model_modules(r.config, DType::BF16))
    r.loaded_bytes += m.weight_bytes;
  r.weights_present = Checkpoint::has_weight_files(r.dir);
  if (r.weights_present) {
    Checkpoint ckpt = Checkpoint::open(r.dir, r.config);
    r.files = ckpt.files().size();
    r.disk_bytes = ckpt.disk_bytes_by_dtype();
  }
  if (args.has("json"))
    print_json(r);
  else
    print_text(r);
  return 0;
}

}  // namespace qwenvl::cli
