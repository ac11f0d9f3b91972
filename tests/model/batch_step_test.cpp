// The padded form of a batched decode pass (model/batch_step.h): row buckets, table widths, and
// the one buffer of inputs with padding rows that only touch the padding block.
#include "model/batch_step.h"

#include <gtest/gtest.h>

#include <vector>

namespace qwenvl {
namespace {

TEST(BatchStep, RowsRoundUpToPowersOfTwoThenSixteens) {
  const std::vector<std::pair<int, int>> want = {
      {1, 1}, {2, 2}, {3, 4}, {5, 8}, {8, 8}, {9, 16}, {16, 16}, {17, 32}, {100, 112}, {128, 128}};
  for (auto [sequences, rows] : want) EXPECT_EQ(padded_batch_rows(sequences, 256), rows);
  EXPECT_EQ(padded_batch_rows(17, 20), 20) << "never past max_sequences";
  EXPECT_EQ(padded_table_stride(1), 1);
  EXPECT_EQ(padded_table_stride(5), 8);
  EXPECT_EQ(padded_table_stride(512), 512);
}

DecoderBatch two_decode_rows() {
  // Sequence 0 at position 70 (its keys in blocks 3 and 5), sequence 1 at position 3 (block 1).
  DecoderBatch b;
  b.ids = {11, 22};
  b.positions = {70, 3, 70, 3, 70, 3};
  b.slots = {5 * 64 + 6, 1 * 64 + 3};
  b.cu_q = {0, 1, 2};
  b.cu_k = {0, 71, 75};
  b.block_table = {3, 5, 1, 0};
  b.table_stride = 2;
  b.block_size = 64;
  b.logit_rows = {0, 1};
  return b;
}

TEST(BatchStep, OnlyDecodeBatchesArePadded) {
  DecoderBatch b = two_decode_rows();
  EXPECT_TRUE(is_decode_batch(b));
  DecoderBatch prompt = b;
  prompt.cu_q = {0, 2};
  prompt.cu_k = {0, 2};
  prompt.logit_rows = {1};
  EXPECT_FALSE(is_decode_batch(prompt));
  DecoderBatch unpaged = b;
  unpaged.block_table.clear();
  EXPECT_FALSE(is_decode_batch(unpaged));
  DecoderBatch some_logits = b;
  some_logits.logit_rows = {1};
  EXPECT_FALSE(is_decode_batch(some_logits));
}

TEST(BatchStep, PaddingRowsKeepToThePaddingBlock) {
  const DecoderBatch b = two_decode_rows();
  const BatchStepLayout layout{4, 4};
  const int32_t padding_block = 9;
  std::vector<int32_t> out(size_t(layout.elements()), -7);
  pad_decode_batch(b, layout, padding_block, out.data());
  auto at = [&](int64_t offset, int count) {
    return std::vector<int32_t>(out.begin() + offset, out.begin() + offset + count);
  };
  EXPECT_EQ(at(layout.ids(), 4), (std::vector<int32_t>{11, 22, 0, 0}));
  EXPECT_EQ(at(layout.positions(), 12),
            (std::vector<int32_t>{70, 3, 0, 0, 70, 3, 0, 0, 70, 3, 0, 0}));
  EXPECT_EQ(at(layout.slots(), 4), (std::vector<int32_t>{326, 67, 576, 576}));
  EXPECT_EQ(at(layout.cu_q(), 5), (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(at(layout.cu_k(), 5), (std::vector<int32_t>{0, 71, 75, 76, 77}));
  EXPECT_EQ(at(layout.logit_rows(), 4), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(at(layout.block_table(), 16),
            (std::vector<int32_t>{3, 5, 9, 9, 1, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}));
}

}  // namespace
}  // namespace qwenvl
