#pragma once
// Helpers the model tests share: random images, an image prompt for the synthetic checkpoints,
// device-to-host copies, relative L2 error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "model/qwen2_5_vl.h"
#include "synthetic_checkpoint.h"

namespace qwenvl::test {

// Normally distributed pixel values for a single-frame grid of h x w patches.
inline ImageInput random_image(int64_t h, int64_t w, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> pixel(0.0f, 1.0f);
  ImageInput image;
  image.grid = {1, h, w};
  image.pixel_values = Tensor::empty({h * w, 1176}, DType::F32);
  for (int64_t i = 0; i < image.pixel_values.numel(); ++i)
    image.pixel_values.data<float>()[i] = pixel(rng);
  return image;
}

// A synthetic checkpoint's image prompt: three tokens, a 2x4-unit image between its vision
// markers, three more tokens; with limits that prefill it in chunks of 5 in a context of 64.
struct ImagePrompt {
  std::vector<ImageInput> images;
  std::vector<int32_t> ids;
  ModelLimits limits;
};

inline ImagePrompt synth_image_prompt() {
  ImagePrompt p;
  p.images = {random_image(4, 8, 3)};
  p.ids = {5, 17, 42, kSynthVisionStart};
  for (int i = 0; i < 8; ++i) p.ids.push_back(kSynthImagePad);
  for (int32_t id : {kSynthVisionEnd, 7, 99, 3}) p.ids.push_back(id);
  p.limits.max_context = 64;
  p.limits.prefill_chunk = 5;
  p.limits.max_image_patches = p.images[0].grid.patches();
  p.limits.max_image_tokens = p.images[0].grid.patches() / 4;
  return p;
}

inline std::vector<float> host_copy(Backend& backend, const Tensor& t) {
  Tensor host = Tensor::empty(t.shape(), DType::F32);
  backend.copy_to_host(t, host);
  backend.synchronize();
  return {host.data<float>(), host.data<float>() + host.numel()};
}

// ||a - b|| / ||b|| in double precision.
inline double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace qwenvl::test
