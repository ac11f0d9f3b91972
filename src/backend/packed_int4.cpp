#include "backend/packed_int4.h"

#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace qwenvl {

Int4Layout Int4Layout::make(int64_t rows, int64_t k, int64_t group, const char* what) {
  if (rows <= 0 || k <= 0 || group <= 0 || group % 2 != 0 || k % group != 0)
    fail(what, ": a 4-bit weight of ", rows, " rows and ", k, " columns cannot use groups of ",
         group, " (the group size must be even and divide the columns)");
  return Int4Layout{rows, k, group};
}

Int4Layout Int4Layout::of(const Tensor& w) {
  if (w.dtype() != DType::Q4 || w.rank() != 3 || w.dim(2) < 5)
    fail_internal("a packed 4-bit weight must be q4 [rows, groups, group/2 + 4], found ",
                  dtype_name(w.dtype()), " ", w.shape().str());
  const int64_t group = (w.dim(2) - 4) * 2;
  return Int4Layout{w.dim(0), w.dim(1) * group, group};
}

void dequantize_int4_groups(const uint8_t* row, const Int4Layout& layout, int64_t first_group,
                            int64_t count, float* out) {
  const uint8_t* params = row + layout.value_bytes();
  const int64_t half_group = layout.group / 2;
  out -= first_group * layout.group;
  for (int64_t g = first_group; g < first_group + count; ++g) {
    uint16_t bits[2];
    std::memcpy(bits, params + 4 * g, sizeof bits);
    const float scale = fp16_to_float(bits[0]), zero = fp16_to_float(bits[1]);
    const uint8_t* v = row + g * half_group;
    float* o = out + g * layout.group;
    for (int64_t i = 0; i < half_group; ++i) {
      o[2 * i] = (float(v[i] & 15) - zero) * scale;
      o[2 * i + 1] = (float(v[i] >> 4) - zero) * scale;
    }
  }
}

Tensor pack_int4(const uint8_t* q, const uint8_t* zeros, const uint16_t* scales,
                 const Int4Layout& layout) {
  Tensor out = Tensor::empty(layout.shape(), DType::Q4);
  const int64_t k = layout.k, groups = layout.groups();
  ThreadPool::global().parallel_for(layout.rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      uint8_t* row = out.data<uint8_t>() + r * layout.row_bytes();
      const uint8_t* qr = q + r * k;
      for (int64_t i = 0; i < k / 2; ++i)
        row[i] = uint8_t((qr[2 * i] & 15) | (qr[2 * i + 1] & 15) << 4);
      uint8_t* params = row + layout.value_bytes();
      for (int64_t g = 0; g < groups; ++g) {
        const uint16_t bits[2] = {scales[r * groups + g],
                                  float_to_fp16(float(zeros[r * groups + g] & 15))};
        std::memcpy(params + 4 * g, bits, sizeof bits);
      }
    }
  });
  return out;
}

}  // namespace qwenvl
