#pragma once
// The model a server loads once: its files, backend, weights placed for the server's largest
// request (context, image size, image tokens), warmed up, and the defaults requests fall back on.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "checkpoint/checkpoint.h"
#include "model/qwen2_5_vl.h"
#include "runtime/model_setup.h"
#include "server/openai_request.h"

namespace qwenvl {

struct ServeOptions {
  std::string model_dir;
  std::string device = "auto";
  DType cuda_dtype = DType::BF16;
  int threads = 0;
  std::string quantize;         // --quantize: "" or "fp8" (checkpoint/quantization.h)
  int64_t max_context = 32768;  // capped by max_position_embeddings
  // The largest image, in pixels after resizing (0: preprocessor_config.json's max_pixels), and
  // the merged tokens one request's images may take together (0: one such image's).
  int64_t max_pixels = 0;
  int64_t max_image_tokens = 0;
  int64_t default_max_tokens = 0;  // 0: generation_config.json's, or 256
  // Sequences generated at once (continuous batching; 1: each request alone) and the KV cache's
  // tokens they share (0: max_context per sequence, capped by the memory plan).
  int max_sequences = 1;
  int64_t kv_cache_tokens = 0;
  // Batch-invariant kernels (Backend::set_batch_invariant): a request's tokens do not depend on
  // the requests batched with it.
  bool batch_invariant = false;
  PlacementOptions placement;
  std::string allowed_media_dir;
  std::string allowed_media_domains;  // --allowed-media-domains; empty: http(s) URLs refused
};

struct ServedModel {
  std::string name;  // the directory's last component, as /v1/models lists it
  ModelFiles files;
  std::unique_ptr<Backend> backend;
  ModelBackends backends;  // backend, and a CPU one where the placement runs modules there
  std::optional<Checkpoint> checkpoint;
  ModelLimits limits;
  std::optional<PlannedPlacement> placement;  // on a GPU
  std::optional<Qwen25VL> model;
  RequestDefaults defaults;
};

// Error for a directory, a flag or a budget that cannot serve. progress: as Qwen25VL's.
std::unique_ptr<ServedModel> load_served_model(const ServeOptions& options,
                                               const Qwen25VL::LoadProgress& progress = {});

}  // namespace qwenvl
