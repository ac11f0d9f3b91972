// config.json -> ModelConfig. Two layouts reach us:
//  - flat (the official Hub files, transformers 4.x): text fields at the top level, `vision_config`
//    nested, rope_scaling {"type": "mrope", "mrope_section": [...]} (or "rope_type": "default"),
//    `torch_dtype`;
//  - nested (transformers 5 save_pretrained): text fields under `text_config`, rope settings under
//    `rope_parameters` (or `rope_scaling`) with `rope_type` and possibly `rope_theta`, `dtype`.
// Text fields are looked up in text_config first, then at the top level. Vision fields that are
// absent take Qwen2_5_VLVisionConfig's defaults: several Hub configs written by transformers 4.49
// carry only hidden_size/out_hidden_size/tokens_per_second in vision_config.
#include "checkpoint/config.h"

#include <cmath>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "checkpoint/json_fields.h"
#include "core/error.h"
#include "core/file_read.h"

namespace qwenvl {

namespace {

using json = nlohmann::json;
using json_fields::Place;

// A text field may sit in text_config (nested layout) or at the top level (flat layout).
struct TextSource {
  const json& root;
  const json* text;  // text_config, or nullptr
  const std::string& source;

  const json& holder(const std::string& key) const {
    if (text && text->contains(key) && !(*text)[key].is_null()) return *text;
    return root;
  }
  Place place(const std::string& key) const {
    return Place{source, &holder(key) == &root ? "" : "text_config"};
  }
  int64_t required_int(const std::string& key) const {
    return json_fields::required_int(holder(key), key, place(key));
  }
  std::optional<int64_t> optional_int(const std::string& key) const {
    return json_fields::optional_int(holder(key), key, place(key));
  }
  std::optional<double> optional_number(const std::string& key) const {
    return json_fields::optional_number(holder(key), key, place(key));
  }
  std::optional<bool> optional_bool(const std::string& key) const {
    return json_fields::optional_bool(holder(key), key, place(key));
  }
  std::optional<std::string> optional_string(const std::string& key) const {
    return json_fields::optional_string(holder(key), key, place(key));
  }
};

int to_int(int64_t v, const std::string& source, const std::string& field) {
  if (v < INT32_MIN || v > INT32_MAX) fail(source, ": field '", field, "' is out of range: ", v);
  return int(v);
}

void require_positive(int64_t v, const std::string& source, const std::string& field) {
  if (v <= 0) fail(source, ": field '", field, "' must be positive, found ", v);
}

// Reads the M-RoPE settings from rope_parameters (transformers 5) or rope_scaling (4.x).
void parse_rope(const TextSource& src, TextConfig& text) {
  const json* rope = nullptr;
  std::string rope_key;
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const json& h = src.holder(key);
    if (h.contains(key) && !h[key].is_null()) {
      rope = &h[key];
      rope_key = (&h == &src.root ? "" : "text_config.") + std::string(key);
      break;
    }
  }
  if (!rope)
    fail(src.source,
         ": required field 'rope_scaling' (or 'rope_parameters') with mrope_section "
         "is missing; Qwen2.5-VL needs M-RoPE");
  if (!rope->is_object())
    fail(src.source, ": field '", rope_key, "' should be an object, found ", rope->type_name());
  Place at{src.source, rope_key};
  // "type": "mrope" in the original files, "rope_type": "default" once transformers rewrote them;
  // both mean M-RoPE here because mrope_section is what selects it.
  for (const char* key : {"rope_type", "type"}) {
    auto kind = json_fields::optional_string(*rope, key, at);
    if (kind && *kind != "mrope" && *kind != "default")
      fail(src.source, ": ", at.field(key), " is '", *kind,
           "'; qwenvl supports only M-RoPE ('mrope' or 'default' with mrope_section)");
  }
  auto section = json_fields::optional_int_list(*rope, "mrope_section", at);
  if (!section) fail(src.source, ": required field '", at.field("mrope_section"), "' is missing");
  for (int64_t s : *section) {
    require_positive(s, src.source, at.field("mrope_section"));
    text.mrope_section.push_back(to_int(s, src.source, at.field("mrope_section")));
  }
  if (auto theta = json_fields::optional_number(*rope, "rope_theta", at)) text.rope_theta = *theta;
}

TextConfig parse_text(const TextSource& src) {
  TextConfig t;
  auto int_field = [&](const char* key) {
    int64_t v = src.required_int(key);
    require_positive(v, src.source, src.place(key).field(key));
    return to_int(v, src.source, src.place(key).field(key));
  };
  t.vocab_size = int_field("vocab_size");
  t.hidden_size = int_field("hidden_size");
  t.intermediate_size = int_field("intermediate_size");
  t.num_hidden_layers = int_field("num_hidden_layers");
  t.num_attention_heads = int_field("num_attention_heads");
  // Qwen2_5_VLTextConfig: num_key_value_heads defaults to num_attention_heads.
  if (src.optional_int("num_key_value_heads"))
    t.num_key_value_heads = int_field("num_key_value_heads");
  else
    t.num_key_value_heads = t.num_attention_heads;
  t.max_position_embeddings = to_int(src.optional_int("max_position_embeddings").value_or(32768),
                                     src.source, "max_position_embeddings");
  require_positive(t.max_position_embeddings, src.source, "max_position_embeddings");
  t.rms_norm_eps = float(src.optional_number("rms_norm_eps").value_or(1e-6));
  if (!(t.rms_norm_eps > 0.0f && t.rms_norm_eps < 1.0f))
    fail(src.source, ": field 'rms_norm_eps' must be in (0, 1)");
  t.rope_theta = float(src.optional_number("rope_theta").value_or(1000000.0));
  t.hidden_act = src.optional_string("hidden_act").value_or("silu");
  parse_rope(src, t);
  if (!(t.rope_theta > 0.0f && std::isfinite(t.rope_theta)))
    fail(src.source, ": rope_theta must be a positive finite number");
  return t;
}

VisionConfig parse_vision(const json& root, const std::string& source) {
  VisionConfig v;
  if (!root.contains("vision_config") || root["vision_config"].is_null())
    fail(source, ": required field 'vision_config' is missing");
  const json& vc = root["vision_config"];
  if (!vc.is_object())
    fail(source, ": field 'vision_config' should be an object, found ", vc.type_name());
  Place at{source, "vision_config"};
  // Defaults are Qwen2_5_VLVisionConfig.__init__'s, used when a Hub file omits the field.
  auto int_field = [&](const char* key, int64_t fallback) {
    int64_t x = json_fields::optional_int(vc, key, at).value_or(fallback);
    require_positive(x, source, at.field(key));
    return to_int(x, source, at.field(key));
  };
  v.depth = int_field("depth", 32);
  v.hidden_size = int_field("hidden_size", 3584);
  v.intermediate_size = int_field("intermediate_size", 3420);
  v.num_heads = int_field("num_heads", 16);
  // The original files say in_chans, transformers writes in_channels.
  v.in_channels =
      int_field("in_channels", json_fields::optional_int(vc, "in_chans", at).value_or(3));
  v.patch_size =
      int_field("patch_size", json_fields::optional_int(vc, "spatial_patch_size", at).value_or(14));
  v.spatial_merge_size = int_field("spatial_merge_size", 2);
  v.temporal_patch_size = int_field("temporal_patch_size", 2);
  v.window_size = int_field("window_size", 112);
  v.out_hidden_size = int_field("out_hidden_size", 3584);
  v.tokens_per_second = int_field("tokens_per_second", 4);
  v.hidden_act = json_fields::optional_string(vc, "hidden_act", at).value_or("silu");
  auto full = json_fields::optional_int_list(vc, "fullatt_block_indexes", at);
  if (!full) full = std::vector<int64_t>{7, 15, 23, 31};
  for (int64_t i : *full) {
    if (i < 0 || i >= v.depth)
      fail(source, ": vision_config.fullatt_block_indexes holds ", i, ", outside 0..", v.depth - 1);
    v.fullatt_block_indexes.push_back(int(i));
  }
  return v;
}

// Upper bounds on the sizes a config.json may declare, far above any Qwen2.5-VL (72B: hidden 8192,
// 80 layers, 64 heads, vocab 152,064, MLP 29,568) yet low enough that every size computed from
// them (a layer's weights, a KV-cache row, a vision window) stays well inside 64-bit arithmetic
// and nothing is sized from a hostile file before the checkpoint's own shapes are checked.
struct SizeBound {
  const char* field;
  int value;
  int max;
};

void check_bounds(const ModelConfig& c, const std::string& source) {
  const TextConfig& t = c.text;
  const VisionConfig& v = c.vision;
  const SizeBound bounds[] = {
      {"vocab_size", t.vocab_size, 1 << 22},
      {"hidden_size", t.hidden_size, 1 << 16},
      {"intermediate_size", t.intermediate_size, 1 << 18},
      {"num_hidden_layers", t.num_hidden_layers, 1024},
      {"num_attention_heads", t.num_attention_heads, 1024},
      {"num_key_value_heads", t.num_key_value_heads, 1024},
      {"max_position_embeddings", t.max_position_embeddings, 1 << 24},
      {"vision_config.depth", v.depth, 1024},
      {"vision_config.hidden_size", v.hidden_size, 1 << 16},
      {"vision_config.intermediate_size", v.intermediate_size, 1 << 18},
      {"vision_config.num_heads", v.num_heads, 1024},
      {"vision_config.in_channels", v.in_channels, 4},
      {"vision_config.patch_size", v.patch_size, 64},
      {"vision_config.spatial_merge_size", v.spatial_merge_size, 8},
      {"vision_config.temporal_patch_size", v.temporal_patch_size, 8},
      {"vision_config.window_size", v.window_size, 4096},
      {"vision_config.out_hidden_size", v.out_hidden_size, 1 << 16},
      {"vision_config.tokens_per_second", v.tokens_per_second, 1000},
  };
  for (const SizeBound& b : bounds)
    if (b.value > b.max)
      fail(source, ": ", b.field, " is ", b.value, ", above the largest qwenvl accepts (", b.max,
           "); is this a Qwen2.5-VL config.json?");
}

void validate(const ModelConfig& c, const std::string& source) {
  check_bounds(c, source);
  const TextConfig& t = c.text;
  if (t.hidden_size % t.num_attention_heads != 0)
    fail(source, ": hidden_size ", t.hidden_size, " is not divisible by num_attention_heads ",
         t.num_attention_heads);
  if (t.num_attention_heads % t.num_key_value_heads != 0)
    fail(source, ": num_attention_heads ", t.num_attention_heads,
         " is not divisible by num_key_value_heads ", t.num_key_value_heads);
  if (t.head_dim % 2 != 0) fail(source, ": head_dim ", t.head_dim, " must be even for RoPE");
  const int64_t sum = std::accumulate(t.mrope_section.begin(), t.mrope_section.end(), int64_t{0});
  if (t.mrope_section.size() != 3 || sum != t.head_dim / 2) {
    std::ostringstream list;
    for (size_t i = 0; i < t.mrope_section.size(); ++i)
      list << (i ? ", " : "") << t.mrope_section[i];
    fail(source, ": mrope_section [", list.str(),
         "] must be three numbers summing to head_dim/2 = ", t.head_dim / 2);
  }
  const VisionConfig& v = c.vision;
  if (v.hidden_size % v.num_heads != 0 || (v.hidden_size / v.num_heads) % 2 != 0)
    fail(source, ": vision_config.hidden_size ", v.hidden_size, " must split into num_heads ",
         v.num_heads, " heads of even size");
  if (v.out_hidden_size != t.hidden_size)
    fail(source, ": vision_config.out_hidden_size ", v.out_hidden_size,
         " differs from the text hidden_size ", t.hidden_size);
  if (v.window_size % (v.patch_size * v.spatial_merge_size) != 0)
    fail(source, ": vision_config.window_size ", v.window_size,
         " is not a multiple of patch_size * spatial_merge_size");
  if (c.torch_dtype != "bfloat16" && c.torch_dtype != "float16" && c.torch_dtype != "float32")
    fail(source, ": dtype '", c.torch_dtype, "' is not one of bfloat16, float16, float32");
}

}  // namespace

ModelConfig parse_model_config(const std::string& json_text, const std::string& source) {
  json root = json_fields::parse_json(json_text, source);
  if (!root.is_object()) fail(source, " should hold a JSON object, found ", root.type_name());
  Place top{source, ""};

  ModelConfig c;
  auto model_type = json_fields::optional_string(root, "model_type", top);
  if (!model_type) fail(source, ": required field 'model_type' is missing");
  if (*model_type != "qwen2_5_vl")
    fail(source, " is a ", *model_type,
         " checkpoint; qwenvl runs Qwen2.5-VL (model_type qwen2_5_vl)");
  c.model_type = *model_type;

  const json* text_config = nullptr;
  if (root.contains("text_config") && !root["text_config"].is_null()) {
    text_config = &root["text_config"];
    if (!text_config->is_object())
      fail(source, ": field 'text_config' should be an object, found ", text_config->type_name());
  }
  TextSource src{root, text_config, source};
  c.text = parse_text(src);
  c.text.head_dim = c.text.hidden_size / c.text.num_attention_heads;
  // The top level decides tying when present (it is the composite model's setting); otherwise
  // text_config's; Qwen2_5_VLConfig's default is untied.
  auto tie = json_fields::optional_bool(root, "tie_word_embeddings", top);
  if (!tie && text_config)
    tie = json_fields::optional_bool(*text_config, "tie_word_embeddings", {source, "text_config"});
  c.text.tie_word_embeddings = tie.value_or(false);

  auto dtype = json_fields::optional_string(root, "dtype", top);
  if (!dtype) dtype = json_fields::optional_string(root, "torch_dtype", top);
  if (!dtype) dtype = src.optional_string("dtype");
  if (!dtype) dtype = src.optional_string("torch_dtype");
  c.torch_dtype = dtype.value_or("bfloat16");

  c.vision = parse_vision(root, source);
  c.quantization = parse_quantization_config(root, source);

  auto token = [&](const char* key, int32_t fallback) {
    auto v = src.optional_int(key);
    if (!v) return fallback;
    if (*v < 0 || *v >= c.text.vocab_size)
      fail(source, ": ", key, " ", *v, " is outside the vocabulary (", c.text.vocab_size, ")");
    return int32_t(*v);
  };
  c.image_token_id = token("image_token_id", c.image_token_id);
  c.video_token_id = token("video_token_id", c.video_token_id);
  c.vision_start_token_id = token("vision_start_token_id", c.vision_start_token_id);
  c.vision_end_token_id = token("vision_end_token_id", c.vision_end_token_id);

  validate(c, source);
  return c;
}

ModelConfig load_model_config(const std::string& model_dir) {
  std::string path = model_dir + "/config.json";
  if (!std::filesystem::exists(path))
    fail("cannot read ", path, " (is --model a Qwen2.5-VL checkpoint directory?)");
  return parse_model_config(read_text_file(path, kMaxJsonFileBytes, "model config"), path);
}

}  // namespace qwenvl
