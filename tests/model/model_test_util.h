#pragma once
// Helpers the model tests share: random images, device-to-host copies, relative L2 error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "model/qwen2_5_vl.h"

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
