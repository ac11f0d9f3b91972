#pragma once
// A batched decode pass (one new row for each of several sequences, their keys in blocks of the
// KV cache) in a shape a captured graph can replay: its rows padded up to a bucket, its block
// tables up to a power-of-two width, and every input in one I32 buffer that one copy fills.
// Padding rows are sequences of one key that write and read only the cache's padding block.
#include <cstdint>
#include <vector>

#include "model/decoder.h"

namespace qwenvl {

// The rows a padded pass of `sequences` runs: up to 8 the next power of two, beyond that the
// next multiple of 16; at most max_sequences.
int padded_batch_rows(int sequences, int max_sequences);
// The block-table width of a padded pass: the next power of two of `blocks`.
int padded_table_stride(int blocks);

// Where each input lies in the buffer of a pass of `rows` rows and tables `stride` blocks wide.
struct BatchStepLayout {
  int rows = 0, stride = 0;
  int64_t ids() const { return 0; }                       // [rows]
  int64_t positions() const { return rows; }              // [3, rows]
  int64_t slots() const { return 4 * int64_t(rows); }     // [rows]
  int64_t cu_q() const { return 5 * int64_t(rows); }      // [rows + 1]
  int64_t cu_k() const { return 6 * int64_t(rows) + 1; }  // [rows + 1]
  int64_t logit_rows() const { return 7 * int64_t(rows) + 2; }
  int64_t block_table() const { return 8 * int64_t(rows) + 2; }  // [rows, stride]
  int64_t elements() const { return block_table() + int64_t(rows) * stride; }
};

// Whether `batch` is a decode pass the padded form serves: one row per sequence, its logits for
// every row in order, no image rows, keys through a block table.
bool is_decode_batch(const DecoderBatch& batch);

// Fills `out` (layout.elements() values) with `batch` padded to the layout: padding rows embed
// token 0 at position 0 and keep their one key in row 0 of `padding_block`; the tables' unused
// entries name it too.
void pad_decode_batch(const DecoderBatch& batch, const BatchStepLayout& layout,
                      int32_t padding_block, int32_t* out);

}  // namespace qwenvl
