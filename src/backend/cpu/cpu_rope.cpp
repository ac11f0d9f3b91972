// Rotary embedding in place, as transformers' apply_rotary_pos_emb with rotate_half:
//   out[j] = x[j] * cos - x[j + d/2] * sin,  out[j + d/2] = x[j + d/2] * cos + x[j] * sin,
// angle_j = float(position) * inv_freq[j] in fp32 (the rotary embedding's fp32 matmul of
// inv_freq by the positions), cos/sin of that fp32 angle. The same RopeSpec covers the text
// model's M-RoPE (pos_row picks the t/h/w row per frequency) and the vision tower's 2-D rope.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_checks.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {
constexpr int kMaxHalfDim = 512;
}

void CpuBackend::rope(Tensor& x, const Tensor& positions, const RopeSpec& spec) {
  check_cpu(x, "rope", "x");
  check_cpu(positions, "rope", "positions");
  check_dtype(x, "rope", "x", {DType::F32});
  check_dtype(positions, "rope", "positions", {DType::I32});
  const int d = spec.head_dim, half = d / 2;
  if (d <= 0 || d % 2 != 0 || half > kMaxHalfDim)
    fail("rope: head_dim ", d, " must be even and at most ", 2 * kMaxHalfDim);
  if (int(spec.pos_row.size()) != half || int(spec.inv_freq.size()) != half)
    fail("rope: pos_row and inv_freq must have head_dim/2 = ", half, " entries");
  if (x.rank() != 3 || x.dim(2) != d)
    fail("rope: x ", x.shape().str(), " must be [tokens, heads, ", d, "]");
  const int64_t tokens = x.dim(0), heads = x.dim(1);
  if (positions.rank() != 2 || positions.dim(1) != tokens)
    fail("rope: positions ", positions.shape().str(), " must be [rows, ", tokens, "]");
  for (int32_t row : spec.pos_row)
    if (row < 0 || row >= positions.dim(0))
      fail("rope: pos_row ", row, " is outside the ", positions.dim(0), " rows of positions");

  float* xs = x.data<float>();
  const int32_t* pos = positions.data<int32_t>();
  ThreadPool::global().parallel_for(tokens, 8, [&](int64_t begin, int64_t end) {
    float cos_j[kMaxHalfDim], sin_j[kMaxHalfDim];
    for (int64_t t = begin; t < end; ++t) {
      for (int j = 0; j < half; ++j) {
        const float angle = float(pos[spec.pos_row[j] * tokens + t]) * spec.inv_freq[j];
        cos_j[j] = std::cos(angle);
        sin_j[j] = std::sin(angle);
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* v = xs + (t * heads + h) * d;
        for (int j = 0; j < half; ++j) {
          const float x1 = v[j], x2 = v[j + half];
          v[j] = x1 * cos_j[j] - x2 * sin_j[j];
          v[j + half] = x2 * cos_j[j] + x1 * sin_j[j];
        }
      }
    }
  });
}

}  // namespace qwenvl
