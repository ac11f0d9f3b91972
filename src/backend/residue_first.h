#pragma once
// How qwenvl stores a width that is not a multiple of 8 (bf16 rows of it are not 16-byte aligned,
// which costs a product its Hopper kernels): "residue first", the count % 64 leading columns,
// zeros up to a whole 64-column tile, then the rest. That is the order in which cuBLAS's kernels
// for such a K (Ampere-style, 64 columns of K per step, the partial step first) add the products,
// so our kernels, reading K in that layout, group and round the sums as transformers' do; the
// zero columns add nothing. A multiple of 8 is stored as it is.
#include <cstdint>

#ifdef __CUDACC__
#define QWENVL_HOST_DEVICE __host__ __device__
#else
#define QWENVL_HOST_DEVICE
#endif

namespace qwenvl {

struct ResidueFirst {
  static constexpr int64_t kTile = 64;
  int64_t count = 0;  // the columns (or rows) that hold values

  QWENVL_HOST_DEVICE int64_t residue() const { return count % 8 ? count % kTile : 0; }
  QWENVL_HOST_DEVICE int64_t width() const { return residue() ? count + kTile - residue() : count; }
  // Where column i (0 <= i < count) is stored.
  QWENVL_HOST_DEVICE int64_t position(int64_t i) const {
    return residue() && i >= residue() ? i + kTile - residue() : i;
  }
};

// The most parts in which a product over a residue-first K is computed when the reference splits
// K (Backend::linear_residue_first).
constexpr int kMaxResidueFirstParts = 8;

}  // namespace qwenvl
