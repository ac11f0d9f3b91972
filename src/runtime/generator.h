#pragma once
// One request from prompt ids (+ images and videos) to generated text: checks the context limit
// before any work, encodes the images, prefills, then samples and decodes token by token, streaming
// text through a callback until an eos id, a stop string or max_new_tokens.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/qwen2_5_vl.h"
#include "runtime/token_logprobs.h"
#include "text/tokenizer.h"

namespace qwenvl {

struct GenerationRequest {
  std::vector<int32_t> prompt_ids;  // with each image's pad tokens expanded
  std::vector<ImageInput> images;   // in the order of the prompt's image blocks
  std::vector<ImageInput> videos;   // in the order of the prompt's video blocks (grid t > 1)
  // Per video: temporal_patch_size / the fps its frames were sampled at (second_per_grid_ts).
  std::vector<float> video_seconds_per_grid;
  int64_t max_new_tokens = 256;
  SamplingParams sampling;  // temperature 0: greedy
  // OpenAI's penalties over the completion's ids (runtime/token_penalties.h). Nonzero ones, and
  // logprobs, process each step's logits on the host: one copy of them out and back per token.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // -1: no logprobs; 0..kMaxTopLogprobs: each token's log-probability and this many alternatives
  // (runtime/token_logprobs.h), in the result and through on_logprob as each token is read.
  int top_logprobs = -1;
  std::function<void(const TokenLogprob&)> on_logprob;
  uint64_t seed = 0;
  std::vector<int32_t> eos_token_ids;
  bool ignore_eos = false;
  std::vector<std::string> stop;
  // End-of-sequence ids are not a stop before this many tokens (vLLM's min_tokens; the id is
  // sampled and skipped over, not masked out of the distribution).
  int64_t min_tokens = 0;
  // Called with each generated id as soon as it is read; returning false ends generation there
  // (finish_reason "cancelled"): a server's client that went away.
  std::function<bool(int32_t)> on_token;
  bool keep_prompt_logits = false;  // copy the last prompt position's logits into the result
  // Copy the last prompt position's activations, step by step (Decoder::set_activation_tap), into
  // the result, for comparisons with another implementation op by op.
  bool keep_prompt_activations = false;
  // Copy the vision tower's output (every image's merged embeddings, in prompt order) into the
  // result, for comparisons with another implementation.
  bool keep_image_embeds = false;
};

struct GenerationTimings {
  double vision_ms = 0, prefill_ms = 0, decode_ms = 0;
  // The host's share: time until the vision tower's / prefill's work was queued (a figure close
  // to the whole says the GPU waited on the host).
  double vision_enqueue_ms = 0, prefill_enqueue_ms = 0;
  // Tokens produced by decode steps (all but the first, which comes from the prefill) per second.
  double decode_tokens_per_s = 0;
};

struct GenerationResult {
  std::string text;             // special tokens left out; cut at a stop string
  std::vector<int32_t> tokens;  // generated ids, the eos id included when it ended generation
  std::vector<TokenLogprob> logprobs;  // with top_logprobs >= 0: per token, but an ending eos
  std::string finish_reason;           // "stop" (eos or stop string), "length" or "cancelled"
  MropePositions positions;            // of the prompt
  std::vector<float> prompt_logits;
  std::vector<std::vector<float>> prompt_activations;  // [3 · layers + 1][hidden]
  std::vector<float> image_embeds;                     // [image tokens · hidden], f32
  GenerationTimings timings;
};

class Generator {
 public:
  Generator(Qwen25VL& model, const Tokenizer& tokenizer) : model_(model), tokenizer_(tokenizer) {}

  // on_text receives text pieces as soon as they are final (may be empty-callback).
  GenerationResult generate(const GenerationRequest& request,
                            const std::function<void(const std::string&)>& on_text);

 private:
  Qwen25VL& model_;
  const Tokenizer& tokenizer_;
};

// The prompt's M-RoPE positions (rope_index over its images' and videos' grids).
MropePositions prompt_positions(const GenerationRequest& request, const ModelConfig& config);
// The images and videos in the order their blocks appear in the prompt: the vision tower's
// output rows must follow the prompt's pad tokens, whichever kind each block is.
std::vector<ImageInput> vision_inputs_in_prompt_order(const GenerationRequest& request,
                                                      int32_t image_token, int32_t video_token);

// Error when prompt + max_new_tokens does not fit max_context: the one check that runs before
// any work so a too-long request costs nothing.
void check_context(int64_t prompt_tokens, int64_t max_new_tokens, int64_t max_context);

}  // namespace qwenvl
