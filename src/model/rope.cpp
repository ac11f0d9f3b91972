#include "model/rope.h"

#include <cmath>
#include <numeric>

#include "core/error.h"

namespace qwenvl {

std::vector<float> rope_inv_freq(int dim, float theta) {
  std::vector<float> inv(size_t(dim / 2));
  for (int i = 0; i < dim / 2; ++i) {
    float exponent = float(2 * i) / float(dim);  // arange(0, dim, 2).float() / dim
    inv[size_t(i)] = 1.0f / std::pow(theta, exponent);
  }
  return inv;
}

RopeSpec vision_rope_spec(int head_dim, float theta) {
  QWENVL_CHECK(head_dim % 4 == 0, "vision head_dim ", head_dim);
  int quarter = head_dim / 4;
  std::vector<float> inv = rope_inv_freq(head_dim / 2, theta);  // `quarter` frequencies
  RopeSpec spec;
  spec.head_dim = head_dim;
  for (int j = 0; j < head_dim / 2; ++j) {
    spec.pos_row.push_back(j < quarter ? 0 : 1);
    spec.inv_freq.push_back(inv[size_t(j % quarter)]);
  }
  return spec;
}

RopeSpec mrope_spec(int head_dim, float rope_theta, const std::vector<int>& mrope_section) {
  int total = std::accumulate(mrope_section.begin(), mrope_section.end(), 0);
  if (mrope_section.size() != 3 || total != head_dim / 2)
    fail("rope_scaling.mrope_section must be three numbers adding up to head_dim / 2 = ",
         head_dim / 2, " (got a sum of ", total, " over ", mrope_section.size(), " sections)");
  RopeSpec spec;
  spec.head_dim = head_dim;
  spec.inv_freq = rope_inv_freq(head_dim, rope_theta);
  spec.round_in_activation_dtype = true;
  for (int row = 0; row < 3; ++row)
    for (int k = 0; k < mrope_section[size_t(row)]; ++k) spec.pos_row.push_back(row);
  return spec;
}

}  // namespace qwenvl
