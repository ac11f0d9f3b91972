#include "checkpoint/awq.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

float value_f32(const Tensor& t, int64_t i) {
  const void* p = t.data();
  switch (t.dtype()) {
    case DType::F32:
      return static_cast<const float*>(p)[i];
    case DType::BF16:
      return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::F16:
      return fp16_to_float(static_cast<const uint16_t*>(p)[i]);
    default:
      fail_internal("quantize_round_to_nearest: weight of dtype ", dtype_name(t.dtype()));
  }
}

void check(const Tensor& t, DType dtype, Shape shape, const std::string& name, const char* part) {
  if (t.dtype() != dtype || !(t.shape() == shape))
    fail("AWQ tensor ", name, ".", part, " is ", dtype_name(t.dtype()), " ", t.shape().str(),
         ", expected ", dtype_name(dtype), " ", shape.str());
}

// Nibble i of AWQ's int32 column j holds output 8j + kAwqOrder[i].
uint8_t nibble_of(const int32_t* packed, int64_t n) {
  static constexpr int kNibbleOf[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // kAwqOrder inverted
  const uint32_t word = uint32_t(packed[n / 8]);
  return uint8_t(word >> (4 * kNibbleOf[n % 8]) & 15);
}

void pack_row(const uint8_t* values, int64_t n, int32_t* packed) {
  for (int64_t j = 0; j < n / 8; ++j) {
    uint32_t word = 0;
    for (int i = 0; i < 8; ++i) word |= uint32_t(values[8 * j + kAwqOrder[i]] & 15) << (4 * i);
    packed[j] = int32_t(word);
  }
}

}  // namespace

Int4Values unpack_awq(const AwqTensors& awq, int64_t group, const std::string& name) {
  const int64_t k = awq.qweight.rank() == 2 ? awq.qweight.dim(0) : 0;
  const int64_t n = awq.scales.rank() == 2 ? awq.scales.dim(1) : 0;
  if (k <= 0 || n <= 0 || group <= 0 || k % group != 0 || n % 8 != 0)
    fail("AWQ tensors of ", name, " (qweight ", awq.qweight.shape().str(), ", scales ",
         awq.scales.shape().str(), ") do not split into groups of ", group);
  check(awq.qweight, DType::I32, {k, n / 8}, name, "qweight");
  check(awq.qzeros, DType::I32, {k / group, n / 8}, name, "qzeros");
  check(awq.scales, DType::F16, {k / group, n}, name, "scales");
  Int4Values v{n, k, group, {}, {}, {}};
  const int64_t groups = k / group;
  v.q.resize(size_t(n * k));
  v.zeros.resize(size_t(n * groups));
  v.scales.resize(size_t(n * groups));
  const int32_t* qw = awq.qweight.data<int32_t>();
  // Gigabytes at load (72B): every core takes a share of the outputs.
  ThreadPool::global().parallel_for(n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = 0; i < k; ++i)
      for (int64_t o = begin; o < end; ++o) v.q[size_t(o * k + i)] = nibble_of(qw + i * (n / 8), o);
  });
  const int32_t* qz = awq.qzeros.data<int32_t>();
  const uint16_t* s = awq.scales.data<uint16_t>();
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t o = 0; o < n; ++o) {
      v.zeros[size_t(o * groups + g)] = nibble_of(qz + g * (n / 8), o);
      v.scales[size_t(o * groups + g)] = s[g * n + o];
    }
  return v;
}

AwqTensors pack_awq(const Int4Values& v) {
  const int64_t n = v.rows, k = v.k, groups = v.k / v.group;
  QWENVL_CHECK(n % 8 == 0 && k % v.group == 0, "AWQ packs 8 outputs per int32");
  AwqTensors t{Tensor::empty({k, n / 8}, DType::I32), Tensor::empty({groups, n / 8}, DType::I32),
               Tensor::empty({groups, n}, DType::F16)};
  std::vector<uint8_t> column(static_cast<size_t>(n));  // one input's values across the outputs
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t o = 0; o < n; ++o) column[size_t(o)] = v.q[size_t(o * k + i)];
    pack_row(column.data(), n, t.qweight.data<int32_t>() + i * (n / 8));
  }
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < n; ++o) {
      column[size_t(o)] = v.zeros[size_t(o * groups + g)];
      t.scales.data<uint16_t>()[g * n + o] = v.scales[size_t(o * groups + g)];
    }
    pack_row(column.data(), n, t.qzeros.data<int32_t>() + g * (n / 8));
  }
  return t;
}

Int4Values quantize_round_to_nearest(const Tensor& w, int64_t group) {
  QWENVL_CHECK(w.rank() == 2 && group > 0 && w.dim(1) % group == 0, "groups of ", group, " in ",
               w.shape().str());
  const int64_t n = w.dim(0), k = w.dim(1), groups = k / group;
  Int4Values v{n, k, group, {}, {}, {}};
  v.q.resize(size_t(n * k));
  v.zeros.resize(size_t(n * groups));
  v.scales.resize(size_t(n * groups));
  for (int64_t o = 0; o < n; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t first = o * k + g * group;
      float lo = value_f32(w, first), hi = lo;
      for (int64_t i = 1; i < group; ++i) {
        lo = std::min(lo, value_f32(w, first + i));
        hi = std::max(hi, value_f32(w, first + i));
      }
      // pseudo_quantize_tensor: scale (max - min) / 15 (at least 1e-5 / 15), stored as fp16;
      // zero point -round(min / scale) in [0, 15]; torch.round rounds half to even, as
      // nearbyint does in the default rounding mode.
      const uint16_t scale_bits = float_to_fp16(std::max(hi - lo, 1e-5f) / 15.0f);
      const float scale = fp16_to_float(scale_bits);
      const float zero = std::clamp(-std::nearbyint(lo / scale), 0.0f, 15.0f);
      v.scales[size_t(o * groups + g)] = scale_bits;
      v.zeros[size_t(o * groups + g)] = uint8_t(zero);
      for (int64_t i = 0; i < group; ++i)
        v.q[size_t(first + i)] = uint8_t(
            std::clamp(std::nearbyint(value_f32(w, first + i) / scale) + zero, 0.0f, 15.0f));
    }
  return v;
}

Int4Values leading_block(const Int4Values& v, int64_t rows, int64_t k) {
  QWENVL_CHECK(rows <= v.rows && k <= v.k && k % v.group == 0, "a block of ", rows, "x", k);
  const int64_t groups = v.k / v.group, kept = k / v.group;
  Int4Values out{rows, k, v.group, {}, {}, {}};
  for (int64_t o = 0; o < rows; ++o) {
    out.q.insert(out.q.end(), v.q.begin() + o * v.k, v.q.begin() + o * v.k + k);
    out.zeros.insert(out.zeros.end(), v.zeros.begin() + o * groups,
                     v.zeros.begin() + o * groups + kept);
    out.scales.insert(out.scales.end(), v.scales.begin() + o * groups,
                      v.scales.begin() + o * groups + kept);
  }
  return out;
}

Tensor dequantize(const Int4Values& v) {
  Tensor out = Tensor::empty({v.rows, v.k}, DType::F32);
  const int64_t groups = v.k / v.group;
  for (int64_t o = 0; o < v.rows; ++o)
    for (int64_t i = 0; i < v.k; ++i) {
      const size_t g = size_t(o * groups + i / v.group);
      out.data<float>()[o * v.k + i] =
          (float(v.q[size_t(o * v.k + i)]) - float(v.zeros[g])) * fp16_to_float(v.scales[g]);
    }
  return out;
}

}  // namespace qwenvl
