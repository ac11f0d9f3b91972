// A model whose parts run on two backends (WeightPlacement's backend indices: the vision tower,
// the token embedding, each decoder layer, lm_head) computes what it computes on one: the
// decoder runs as stages that hand the residual stream over, the KV cache lives with its layers,
// the image embeddings move to the embedding's backend. On the CPU two CPU backends give the
// same logits bit for bit, through an image prompt (3 vision blocks), a chunked prefill, decode
// steps from the host's tokens and greedy steps from the device's. On the GPU machine
// QWENVL_TEST_DEVICE=cuda:bf16 puts backend 0 on CUDA and backend 1 on the CPU (--offload cpu),
// compared with the model on CUDA alone.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/error.h"
#include "model/qwen2_5_vl.h"
#include "model_test_util.h"
#include "synthetic_checkpoint.h"

namespace qwenvl {
namespace {

using test::host_copy;

using Synth = test::SynthModel;

Synth& synth() {
  static Synth s = test::open_synthetic_model("pipeline", false, 9876, 5, 3, true);
  return s;
}

// lm_head tied to the embedding matrix.
Synth& tied_synth() {
  static Synth s = test::open_synthetic_model("pipeline_tied", true, 9876, 5, 3, true);
  return s;
}

bool on_cuda() {
  const char* env = std::getenv("QWENVL_TEST_DEVICE");
  return env && std::string(env) == "cuda:bf16";
}

std::unique_ptr<Backend> first_backend() {
  return on_cuda() ? make_backend("cuda", DType::BF16, 0) : make_backend("cpu", DType::BF16, 2);
}

struct Run {
  std::vector<std::vector<float>> logits;  // after the prompt, then after each decode step
  std::vector<int32_t> greedy;             // tokens of the greedy steps
};

// The image prompt prefilled in chunks of 5, 4 decode steps of given tokens, 3 greedy steps.
Run run(const WeightPlacement& placement, const Synth& model_files = synth()) {
  auto first = first_backend();
  auto second = make_backend("cpu", DType::BF16, 2);
  std::vector<Backend*> backends{first.get()};
  if (placement.backends() > 1) backends.push_back(second.get());
  const ModelConfig& config = model_files.config;
  const test::ImagePrompt prompt = test::synth_image_prompt();
  const std::vector<ImageInput>& images = prompt.images;
  const std::vector<int32_t>& ids = prompt.ids;
  const ModelLimits& limits = prompt.limits;
  Qwen25VL model(config, model_files.checkpoint, backends, limits, placement);
  model.warm_up();
  RopeIndexInputs rope;
  rope.image_grids.push_back(images[0].grid);
  rope.tokens = {config.image_token_id, config.video_token_id};
  const std::vector<size_t> marks = model.workspace_marks();
  const Tensor embeds = model.encode_images(images);
  model.prefill(ids, rope_index(ids, rope), &embeds);
  model.release_workspaces(marks);
  Backend& head = model.backend();
  Run out;
  out.logits.push_back(host_copy(head, model.logits()));
  for (int32_t token : {11, 12, 13, 14}) {
    model.decode_step(token);
    out.logits.push_back(host_copy(head, model.logits()));
  }
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  head.sample(model.logits(), Tensor(), greedy, 0.0f, model.next_token());
  for (int step = 0; step < 3; ++step) {
    const int64_t tag = model.decode_next(true);
    Tensor token = Tensor::empty({1}, DType::I32);
    head.wait_published(tag, token);
    out.greedy.push_back(token.data<int32_t>()[0]);
  }
  // The workspaces are as the request found them.
  EXPECT_EQ(model.workspace_marks(), marks);
  return out;
}

const Run& single() {
  static const Run r = run(WeightPlacement{});
  return r;
}

int layers() { return synth().config.text.num_hidden_layers; }

void expect_single_backend_results(const WeightPlacement& placement,
                                   const Run& single_results = single(),
                                   const Synth& model_files = synth()) {
  const Run split = run(placement, model_files);
  ASSERT_EQ(split.logits.size(), single_results.logits.size());
  for (size_t step = 0; step < split.logits.size(); ++step) {
    if (on_cuda()) {  // part of the model computes in f32 on the CPU instead of bf16
      EXPECT_LT(test::rel_l2(split.logits[step], single_results.logits[step]), 3e-2)
          << "step " << step;
    } else {
      EXPECT_EQ(split.logits[step], single_results.logits[step]) << "step " << step;
    }
  }
  if (!on_cuda()) {
    EXPECT_EQ(split.greedy, single_results.greedy);
  }
}

TEST(Pipeline, LastLayersOnTheSecondBackend) {
  WeightPlacement p;  // --offload cpu's shape: what does not fit the GPU, from some layer on
  p.layer_backends = {0, 0, 1, 1, 1};
  p.head_backend = 1;
  expect_single_backend_results(p);
}

TEST(Pipeline, EmbeddingAndHeadApartFromTheLayers) {
  WeightPlacement p;  // stages of the embedding alone and of lm_head alone
  p.layer_backends.assign(size_t(layers()), 1);
  expect_single_backend_results(p);
}

TEST(Pipeline, BackendsAlternate) {
  WeightPlacement p;  // an explicit device map may send the stream back and forth
  p.layer_backends = {1, 0, 0, 1, 0};
  p.head_backend = 1;
  expect_single_backend_results(p);
}

TEST(Pipeline, VisionTowerApartFromTheEmbedding) {
  WeightPlacement p;
  p.vision_backend = 1;
  p.layer_backends = {0, 0, 0, 1, 1};
  expect_single_backend_results(p);
}

TEST(Pipeline, TiedHeadOnAnotherBackendThanTheEmbedding) {
  WeightPlacement p;
  p.layer_backends = {0, 0, 0, 1, 1};
  p.head_backend = 1;
  expect_single_backend_results(p, run(WeightPlacement{}, tied_synth()), tied_synth());
}

TEST(Pipeline, StreamedLayersOnTheLastBackend) {
  WeightPlacement p;
  p.layer_backends = {0, 0, 1, 1, 1};
  p.head_backend = 1;
  p.stream_layers = {false, false, false, true, true};
  expect_single_backend_results(p);
}

TEST(Pipeline, StreamedLayersSplitByAnotherBackendAreAnError) {
  WeightPlacement p;
  p.layer_backends = {0, 1, 0, 0, 0};
  p.stream_layers = {true, false, false, false, false};
  auto first = make_backend("cpu", DType::BF16, 1), second = make_backend("cpu", DType::BF16, 1);
  ModelLimits limits;
  limits.max_context = 32;
  EXPECT_THROW(Qwen25VL(synth().config, synth().checkpoint, {first.get(), second.get()}, limits, p),
               Error);
}

TEST(Pipeline, EachBackendPlansWhatItHolds) {
  const ModelConfig& config = synth().config;
  ModelLimits limits;
  limits.max_context = 64;
  limits.max_image_patches = 32;
  limits.max_image_tokens = 8;
  WeightPlacement p;
  p.layer_backends = {0, 0, 1, 1, 1};
  p.head_backend = 1;
  const MemoryPlan whole = Qwen25VL::plan(config, synth().checkpoint, DType::BF16, limits);
  const std::vector<MemoryPlan> split =
      Qwen25VL::plans(config, synth().checkpoint, {DType::BF16, DType::BF16}, limits, p);
  ASSERT_EQ(split.size(), 2u);
  // Every weight once, and layer 2's input norm once more: layer 1 ends with it on backend 0.
  const size_t norm = allocation_size(size_t(config.text.hidden_size) * 2);
  EXPECT_EQ(split[0].weight_bytes + split[1].weight_bytes, whole.weight_bytes + norm);
  // Backend 1 holds three layers' keys and values and the sampler; backend 0 two layers'.
  const size_t kv = kv_cache_layer_bytes(config.text, limits.max_context, DType::BF16);
  EXPECT_GE(split[0].persistent_bytes, 2 * kv);
  EXPECT_LT(split[0].persistent_bytes, 3 * kv);
  EXPECT_GE(split[1].persistent_bytes, 3 * kv + sampling_state_bytes(config.text, limits));
  // Only backend 0 runs the vision tower and holds the image embeddings.
  EXPECT_EQ(split[0].workspace_bytes, whole.workspace_bytes);
  EXPECT_LT(split[1].workspace_bytes, whole.workspace_bytes);
}

}  // namespace
}  // namespace qwenvl
