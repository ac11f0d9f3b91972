// Rotary embedding, as transformers' apply_rotary_pos_emb with rotate_half:
//   out[j] = x[j] * cos - x[j + d/2] * sin,  out[j + d/2] = x[j + d/2] * cos + x[j] * sin,
// angle_j = float(position) * inv_freq[j] in fp32 (the rotary embedding's fp32 matmul of
// inv_freq by the positions), cos/sin of that fp32 angle. The same RopeSpec covers the text
// model's M-RoPE (pos_row picks the t/h/w row per frequency) and the vision tower's 2-D rope.
// rope_qkv applies it to the q and k heads of a fused projection and moves k and v into place
// (linear_rope_qkv is Backend's composition of linear and this).
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_checks.h"
#include "backend/rope_qkv_shape.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {
constexpr int kMaxHalfDim = 512;

void rotate(const float* x, const float* cos_j, const float* sin_j, int half, float* out) {
  for (int j = 0; j < half; ++j) {
    const float x1 = x[j], x2 = x[j + half];
    out[j] = x1 * cos_j[j] - x2 * sin_j[j];
    out[j + half] = x2 * cos_j[j] + x1 * sin_j[j];
  }
}
}  // namespace

void CpuBackend::rope_qkv(const Tensor& qkv, const Tensor& positions, const RopeSpec& spec,
                          const Tensor& slots, Tensor& q, Tensor& k, Tensor& v) {
  check_cpu(qkv, "rope_qkv", "qkv");
  check_cpu(positions, "rope_qkv", "positions");
  for (const Tensor* t : {&qkv, static_cast<const Tensor*>(&q), static_cast<const Tensor*>(&k),
                          static_cast<const Tensor*>(&v)})
    check_dtype(*t, "rope_qkv", "qkv/q/k/v", {DType::F32});
  const RopeQkvShape s = check_rope_qkv(qkv, positions, spec, slots, q, k, v, "rope_qkv");
  const int d = s.head_dim, half = d / 2;
  if (half > kMaxHalfDim) fail("rope_qkv: head_dim ", d, " is above ", 2 * kMaxHalfDim);
  const int32_t* slot = nullptr;
  if (slots.defined()) {
    check_cpu(slots, "rope_qkv", "slots");
    slot = slots.data<int32_t>();
    for (int64_t t = 0; t < s.tokens; ++t)
      if (slot[t] < 0 || slot[t] >= s.kv_rows)
        fail_internal("rope_qkv: slot ", slot[t], " is outside the ", s.kv_rows,
                      " rows of k and v");
  }
  const int64_t width = int64_t(s.heads_q + 2 * s.heads_kv) * d;
  const int64_t kv_width = int64_t(s.heads_kv) * d;
  const float* in = qkv.data<float>();
  const int32_t* pos = positions.data<int32_t>();
  float *qs = q.data<float>(), *ks = k.data<float>(), *vs = v.data<float>();
  ThreadPool::global().parallel_for(s.tokens, 8, [&](int64_t begin, int64_t end) {
    float cos_j[kMaxHalfDim], sin_j[kMaxHalfDim];
    for (int64_t t = begin; t < end; ++t) {
      for (int j = 0; j < half; ++j) {
        const float angle = float(pos[spec.pos_row[j] * s.tokens + t]) * spec.inv_freq[j];
        cos_j[j] = std::cos(angle);
        sin_j[j] = std::sin(angle);
      }
      const float* row = in + t * width;
      const int64_t dst = slot ? slot[t] : t;
      for (int h = 0; h < s.heads_q; ++h)
        rotate(row + h * d, cos_j, sin_j, half, qs + (t * s.heads_q + h) * d);
      for (int h = 0; h < s.heads_kv; ++h)
        rotate(row + (s.heads_q + h) * d, cos_j, sin_j, half, ks + dst * kv_width + h * d);
      std::memcpy(vs + dst * kv_width, row + (s.heads_q + s.heads_kv) * d,
                  size_t(kv_width) * sizeof(float));
    }
  });
}

}  // namespace qwenvl
