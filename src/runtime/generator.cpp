#include "runtime/generator.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "runtime/sequence_output.h"
#include "runtime/token_sampler.h"

namespace qwenvl {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

void copy_ids_to_device(Backend& backend, const std::vector<int32_t>& ids, Tensor dst) {
  if (ids.empty()) return;
  Tensor host = Tensor::empty({int64_t(ids.size())}, DType::I32);
  std::copy(ids.begin(), ids.end(), host.data<int32_t>());
  backend.copy_from_host(host, dst);
}

}  // namespace

std::vector<ImageInput> vision_inputs_in_prompt_order(const GenerationRequest& request,
                                                      int32_t image_token, int32_t video_token) {
  if (request.videos.empty()) return request.images;
  std::vector<ImageInput> out;
  size_t image = 0, video = 0;
  int32_t previous = -1;
  for (int32_t id : request.prompt_ids) {
    if (id != previous && id == image_token && image < request.images.size())
      out.push_back(request.images[image++]);
    if (id != previous && id == video_token && video < request.videos.size())
      out.push_back(request.videos[video++]);
    previous = id;
  }
  // rope_index has checked that the blocks and the inputs agree
  QWENVL_CHECK(image == request.images.size() && video == request.videos.size());
  return out;
}

MropePositions prompt_positions(const GenerationRequest& request, const ModelConfig& config) {
  RopeIndexInputs rope_inputs;
  for (const ImageInput& image : request.images) rope_inputs.image_grids.push_back(image.grid);
  for (const ImageInput& video : request.videos) rope_inputs.video_grids.push_back(video.grid);
  rope_inputs.seconds_per_video_grid = request.video_seconds_per_grid;
  rope_inputs.merge_size = config.vision.spatial_merge_size;
  rope_inputs.tokens_per_second = config.vision.tokens_per_second;
  rope_inputs.tokens = {config.image_token_id, config.video_token_id};
  return rope_index(request.prompt_ids, rope_inputs);
}

void check_context(int64_t prompt_tokens, int64_t max_new_tokens, int64_t max_context) {
  if (max_new_tokens < 1) fail("max_new_tokens must be at least 1 (got ", max_new_tokens, ")");
  if (prompt_tokens + max_new_tokens > max_context)
    fail("the prompt (", prompt_tokens, " tokens) plus max_new_tokens (", max_new_tokens,
         ") exceeds the context limit of ", max_context,
         " tokens; shorten the prompt, lower --max-new-tokens or raise --max-context");
}

GenerationResult Generator::generate(const GenerationRequest& request,
                                     const std::function<void(const std::string&)>& on_text) {
  const int64_t prompt_len = int64_t(request.prompt_ids.size());
  check_context(prompt_len, request.max_new_tokens, model_.max_context());
  Backend& backend = model_.backend();
  const ModelConfig& config = model_.config();
  GenerationResult result;

  result.positions = prompt_positions(request, config);

  const std::vector<size_t> marks = model_.workspace_marks();
  auto start = Clock::now();
  Tensor image_embeds;
  const bool has_vision = !request.images.empty() || !request.videos.empty();
  if (has_vision) {
    model_.profile_section("vision");
    image_embeds = model_.encode_images(
        vision_inputs_in_prompt_order(request, config.image_token_id, config.video_token_id));
    result.timings.vision_enqueue_ms = ms_since(start);
    model_.synchronize();
  }
  result.timings.vision_ms = ms_since(start);
  if (request.keep_image_embeds && image_embeds.defined()) {
    Tensor host = Tensor::empty(image_embeds.shape(), DType::F32);
    model_.image_backend().copy_to_host(image_embeds, host);
    model_.image_backend().synchronize();
    result.image_embeds.assign(host.data<float>(), host.data<float>() + host.numel());
  }

  model_.profile_section("prefill");
  start = Clock::now();
  if (request.keep_prompt_activations)
    model_.set_activation_tap([&](int step, Backend& on, const Tensor& row) {
      Tensor host = Tensor::empty(row.shape(), DType::F32);
      on.copy_to_host(row, host);
      on.synchronize();
      result.prompt_activations.resize(
          std::max(result.prompt_activations.size(), size_t(step) + 1));
      result.prompt_activations[size_t(step)].assign(host.data<float>(),
                                                     host.data<float>() + host.numel());
    });
  try {
    model_.prefill(request.prompt_ids, result.positions, has_vision ? &image_embeds : nullptr);
  } catch (...) {
    model_.set_activation_tap({});
    throw;
  }
  model_.set_activation_tap({});
  result.timings.prefill_enqueue_ms = ms_since(start);
  model_.synchronize();
  result.timings.prefill_ms = ms_since(start);
  model_.release_workspaces(marks);
  if (request.keep_prompt_logits) {
    Tensor host = Tensor::empty(model_.logits().shape(), DType::F32);
    backend.copy_to_host(model_.logits(), host);
    backend.synchronize();
    result.prompt_logits.assign(host.data<float>(), host.data<float>() + host.numel());
  }

  start = Clock::now();
  copy_ids_to_device(backend, request.prompt_ids, model_.history().rows(0, prompt_len));
  TokenSampler sampler(request, model_.logits().numel(), RepeatPenalty::kDeviceHistory);
  SequenceOutput output(request, tokenizer_, on_text, result);
  // Decode step i consumes token i and runs without waiting for the host: it publishes the token
  // (Qwen25VL::decode_next) and the host reads it while the step runs, so the host's reading,
  // detokenizing and stop checks never leave the device idle. A stop at token i leaves step i
  // computed in vain. The last token, which no step consumes, is read with begin_read. Greedy
  // decoding's pick is part of the step itself. A request whose logits the host processes
  // (penalties the backends lack, logprobs) reads each token before sampling the next instead.
  const bool host_logits = sampler.host_logits();
  const bool greedy = sampler.greedy();
  auto sample = [&](int64_t step) {
    sampler.sample(backend, model_.logits(), model_.history().rows(0, prompt_len + step), step,
                   model_.next_token());
  };
  Tensor token_host = Tensor::empty({1}, DType::I32);
  model_.profile_section("decode");
  sample(0);
  for (int64_t step = 0; step < request.max_new_tokens; ++step) {
    if (step + 1 < request.max_new_tokens) {
      const int64_t tag = model_.decode_next(greedy);
      if (!greedy && !host_logits) sample(step + 1);
      backend.wait_published(tag, token_host);
    } else {
      backend.end_read(backend.begin_read(model_.next_token()), token_host);
    }
    const int32_t id = token_host.data<int32_t>()[0];
    if (!output.accept(id, sampler)) break;
    if (host_logits && step + 1 < request.max_new_tokens) {
      sampler.add_generated(id);
      sample(step + 1);
    }
  }
  output.finish();
  backend.synchronize();
  result.timings.decode_ms = ms_since(start);
  const int64_t decoded = int64_t(result.tokens.size()) - 1;
  if (decoded > 0 && result.timings.decode_ms > 0)
    result.timings.decode_tokens_per_s = double(decoded) / (result.timings.decode_ms / 1000.0);
  return result;
}

}  // namespace qwenvl
