// load_preprocess_config: the preprocessor_config.json fields Qwen2VLImageProcessor reads.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_read.h"
#include "vision/preprocess.h"

namespace qwenvl {
namespace {

using nlohmann::json;

int64_t read_int(const json& j, const char* key, int64_t fallback, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
    fail(file, ": '", key, "' must be a positive integer");
  return j[key].get<int64_t>();
}

void read_triplet(const json& j, const char* key, float out[3], const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return;
  const json& v = j[key];
  if (v.is_number()) {  // one value for every channel
    for (int c = 0; c < 3; ++c) out[c] = float(v.get<double>());
    return;
  }
  if (!v.is_array() || v.size() != 3)
    fail(file, ": '", key, "' must be a number or a list of 3 numbers");
  // Python floats (doubles) cast to float32, as np.array(mean, dtype=float32) does.
  for (int c = 0; c < 3; ++c) {
    if (!v[c].is_number()) fail(file, ": '", key, "' must hold numbers");
    out[c] = float(v[c].get<double>());
  }
}

void require_flag(const json& j, const char* key, const std::string& file) {
  if (j.contains(key) && j[key].is_boolean() && !j[key].get<bool>())
    fail(file, ": '", key, "' is false; qwenvl implements the processor with it on only");
}

}  // namespace

void check_pixel_bounds(int64_t min_pixels, int64_t max_pixels, const std::string& source) {
  if (min_pixels < 1 || max_pixels < 1 || max_pixels > kMaxResizedPixels)
    fail(source, ": min_pixels and max_pixels must be in [1, ", kMaxResizedPixels, "], got ",
         min_pixels, " and ", max_pixels);
  if (min_pixels > max_pixels)
    fail(source, ": min_pixels (", min_pixels, ") is larger than max_pixels (", max_pixels, ")");
}

PreprocessConfig load_preprocess_config(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::string file = (fs::path(model_dir) / "preprocessor_config.json").string();
  json j;
  bool nested = false;
  if (!fs::exists(file)) {
    std::string combined = (fs::path(model_dir) / "processor_config.json").string();
    if (!fs::exists(combined))
      fail("no preprocessor_config.json in ", model_dir, " (is it a Qwen2.5-VL checkpoint?)");
    file = combined;
    nested = true;
  }
  const std::string text = read_text_file(file, kMaxJsonFileBytes, "preprocessor config");
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(file, " is not valid JSON: ", e.what());
  }
  if (nested) {
    if (!j.contains("image_processor") || !j["image_processor"].is_object())
      fail(file, " has no \"image_processor\" settings");
    j = j["image_processor"];
  }
  if (!j.is_object()) fail(file, " must hold a JSON object");

  PreprocessConfig config;
  if (j.contains("size") && j["size"].is_object()) {
    const json& size = j["size"];
    config.min_pixels = read_int(size, "shortest_edge", config.min_pixels, file);
    config.max_pixels = read_int(size, "longest_edge", config.max_pixels, file);
    config.min_pixels = read_int(size, "min_pixels", config.min_pixels, file);  // older saves
    config.max_pixels = read_int(size, "max_pixels", config.max_pixels, file);
  }
  config.min_pixels = read_int(j, "min_pixels", config.min_pixels, file);
  config.max_pixels = read_int(j, "max_pixels", config.max_pixels, file);
  config.patch_size = int(read_int(j, "patch_size", config.patch_size, file));
  config.merge_size = int(read_int(j, "merge_size", config.merge_size, file));
  config.temporal_patch_size =
      int(read_int(j, "temporal_patch_size", config.temporal_patch_size, file));
  read_triplet(j, "image_mean", config.image_mean, file);
  read_triplet(j, "image_std", config.image_std, file);
  for (float s : config.image_std)
    if (!(s != 0.0f)) fail(file, ": 'image_std' must not contain 0");
  if (j.contains("rescale_factor") && !j["rescale_factor"].is_null()) {
    if (!j["rescale_factor"].is_number() || !(j["rescale_factor"].get<double>() > 0))
      fail(file, ": 'rescale_factor' must be a positive number");
    config.rescale_factor = j["rescale_factor"].get<double>();
  }
  check_pixel_bounds(config.min_pixels, config.max_pixels, file);
  const std::pair<const char*, int> sizes[] = {{"patch_size", config.patch_size},
                                               {"merge_size", config.merge_size},
                                               {"temporal_patch_size", config.temporal_patch_size}};
  for (const auto& [key, value] : sizes)
    if (value < 1 || value > 64) fail(file, ": '", key, "' is ", value, "; it must be in [1, 64]");
  require_flag(j, "do_resize", file);
  require_flag(j, "do_rescale", file);
  require_flag(j, "do_normalize", file);
  if (j.contains("resample") && j["resample"].is_number_integer() && j["resample"].get<int>() != 3)
    fail(file, ": 'resample' is ", j["resample"].get<int>(),
         "; qwenvl implements bicubic resampling (3) only");
  return config;
}

}  // namespace qwenvl
