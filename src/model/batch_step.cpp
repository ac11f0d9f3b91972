#include "model/batch_step.h"

#include <algorithm>

#include "core/error.h"

namespace qwenvl {

int padded_batch_rows(int sequences, int max_sequences) {
  QWENVL_CHECK(sequences >= 1 && sequences <= max_sequences, sequences, " sequences of ",
               max_sequences);
  int rows = 1;
  while (rows < sequences && rows < 8) rows *= 2;
  if (rows < sequences) rows = (sequences + 15) / 16 * 16;
  return std::min(rows, max_sequences);
}

int padded_table_stride(int blocks) {
  int stride = 1;
  while (stride < blocks) stride *= 2;
  return stride;
}

bool is_decode_batch(const DecoderBatch& batch) {
  const size_t n = batch.ids.size();
  if (n == 0 || !batch.images.empty() || batch.block_table.empty() || batch.cu_q.size() != n + 1 ||
      batch.logit_rows.size() != n)
    return false;
  for (size_t i = 0; i < n; ++i)
    if (batch.cu_q[i + 1] != int32_t(i + 1) || batch.logit_rows[i] != int32_t(i)) return false;
  return true;
}

void pad_decode_batch(const DecoderBatch& batch, const BatchStepLayout& layout,
                      int32_t padding_block, int32_t* out) {
  const int n = int(batch.ids.size()), rows = layout.rows, stride = layout.stride;
  QWENVL_CHECK(is_decode_batch(batch) && n <= rows && batch.table_stride <= stride,
               "a decode batch of ", n, " rows padded to ", rows);
  const int32_t padding_slot = padding_block * int32_t(batch.block_size);
  for (int i = 0; i < rows; ++i) {
    const bool real = i < n;
    out[layout.ids() + i] = real ? batch.ids[size_t(i)] : 0;
    for (int r = 0; r < 3; ++r)
      out[layout.positions() + int64_t(r) * rows + i] =
          real ? batch.positions[size_t(r) * size_t(n) + size_t(i)] : 0;
    out[layout.slots() + i] = real ? batch.slots[size_t(i)] : padding_slot;
    out[layout.logit_rows() + i] = i;
    int32_t* table = out + layout.block_table() + int64_t(i) * stride;
    std::fill(table, table + stride, padding_block);
    if (real)
      std::copy_n(batch.block_table.begin() + int64_t(i) * batch.table_stride, batch.table_stride,
                  table);
  }
  for (int i = 0; i <= rows; ++i) {
    out[layout.cu_q() + i] = i;
    // A padding row's segment has one key: its own.
    out[layout.cu_k() + i] = i <= n ? batch.cu_k[size_t(i)] : batch.cu_k[size_t(n)] + (i - n);
  }
}

}  // namespace qwenvl
