#include "backend/rope_qkv_shape.h"

#include "core/error.h"

namespace qwenvl {

RopeQkvShape check_rope_qkv(const Tensor& qkv, const Tensor& positions, const RopeSpec& spec,
                            const Tensor& slots, const Tensor& q, const Tensor& k, const Tensor& v,
                            const char* op) {
  RopeQkvShape s;
  s.head_dim = spec.head_dim;
  const int half = spec.head_dim / 2;
  if (spec.head_dim <= 0 || spec.head_dim % 2 != 0)
    fail_internal(op, ": head_dim ", spec.head_dim, " must be positive and even");
  if (int(spec.pos_row.size()) != half || int(spec.inv_freq.size()) != half)
    fail_internal(op, ": pos_row and inv_freq must have head_dim/2 = ", half, " entries");
  if (q.rank() != 3 || q.dim(2) != spec.head_dim)
    fail_internal(op, ": q ", q.shape().str(), " must be [tokens, heads, ", spec.head_dim, "]");
  if (k.rank() != 3 || k.dim(2) != spec.head_dim || !(k.shape() == v.shape()))
    fail_internal(op, ": k ", k.shape().str(), " and v ", v.shape().str(),
                  " must both be [rows, heads, ", spec.head_dim, "]");
  s.tokens = q.dim(0);
  s.heads_q = int(q.dim(1));
  s.heads_kv = int(k.dim(1));
  s.kv_rows = k.dim(0);
  const int64_t width = int64_t(s.heads_q + 2 * s.heads_kv) * spec.head_dim;
  if (qkv.rank() < 1 || qkv.dim(-1) != width || qkv.numel() != s.tokens * width)
    fail_internal(op, ": qkv ", qkv.shape().str(), " must hold ", s.tokens, " rows of ", width,
                  " (q, k and v heads)");
  if (positions.dtype() != DType::I32 || positions.rank() != 2 || positions.dim(1) != s.tokens)
    fail_internal(op, ": positions ", positions.shape().str(), " must be I32 [rows, ", s.tokens,
                  "]");
  for (int32_t row : spec.pos_row)
    if (row < 0 || row >= positions.dim(0))
      fail_internal(op, ": pos_row ", row, " is outside the ", positions.dim(0),
                    " rows of positions");
  if (slots.defined()) {
    if (slots.dtype() != DType::I32 || slots.numel() != s.tokens)
      fail_internal(op, ": slots must be I32 with one entry per token (", s.tokens, ")");
  } else if (s.kv_rows < s.tokens) {
    fail_internal(op, ": k and v have ", s.kv_rows, " rows for ", s.tokens, " tokens");
  }
  return s;
}

}  // namespace qwenvl
