// The CPU backend's regions: bump allocation, alignment, marks, exhaustion as an Error, peak
// accounting, zero-copy weight uploads, and copies with dtype conversion.
#include "cpu_test_support.h"

namespace qwenvl::test {
namespace {

using CpuMemoryTest = CpuTest;

TEST_F(CpuMemoryTest, WorkspaceIsAnAlignedBumpAllocatorWithMarks) {
  backend_.reserve(0, 0, 4096);
  Tensor a = backend_.alloc({3}, DType::F32);
  Tensor b = backend_.alloc({5, 7}, DType::BF16);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u);
  EXPECT_NE(a.data(), b.data());
  const size_t mark = backend_.workspace_mark();
  Tensor c = backend_.alloc({100}, DType::F32);
  backend_.workspace_release(mark);
  Tensor d = backend_.alloc({100}, DType::F32);
  EXPECT_EQ(c.data(), d.data()) << "released memory is handed out again";
  EXPECT_EQ(d.shape(), Shape({100}));
  EXPECT_EQ(d.device(), Device::CPU);
}

TEST_F(CpuMemoryTest, ExhaustedWorkspaceThrowsInsteadOfAllocating) {
  backend_.reserve(0, 0, 1000);
  backend_.alloc({200}, DType::F32);  // 800 bytes
  try {
    backend_.alloc({100}, DType::F32);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("workspace of 1000 bytes is exhausted"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(backend_.alloc_persistent({1}, DType::F32), Error) << "no persistent region";
}

TEST_F(CpuMemoryTest, PeakCountsTheHighWaterMarkOfEveryRegion) {
  backend_.reserve(1 << 12, 1 << 12, 1 << 14);
  backend_.alloc_persistent({256}, DType::F32);  // 1024
  const size_t mark = backend_.workspace_mark();
  backend_.alloc({1000}, DType::F32);  // 4000
  backend_.workspace_release(mark);
  backend_.alloc({10}, DType::F32);
  EXPECT_GE(backend_.peak_bytes(), 1024u + 4000u);
  EXPECT_LT(backend_.peak_bytes(), 1024u + 4000u + 1024u);
}

TEST_F(CpuMemoryTest, UploadKeepsTheHostViewOrConvertsIntoTheWeightRegion) {
  Tensor host = random({4, 6}, DType::BF16);
  backend_.reserve(0, 0, 0);
  Tensor same = backend_.upload_weight(host, DType::BF16);
  EXPECT_EQ(same.data(), host.data()) << "a weight in the asked dtype is used where it lies";
  EXPECT_THROW(backend_.upload_weight(host, DType::F32), Error) << "no weight region reserved";
  backend_.reserve(1024, 0, 0);
  Tensor f = backend_.upload_weight(host, DType::F32);
  ASSERT_EQ(f.dtype(), DType::F32);
  for (int64_t i = 0; i < host.numel(); ++i) EXPECT_EQ(get(f, i), get(host, i));
}

TEST_F(CpuMemoryTest, CopiesConvertBetweenDtypes) {
  backend_.reserve(0, 0, 4096);
  Tensor host = random({37}, DType::F32, -100, 100);
  for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
    Tensor dev = backend_.alloc({37}, dt);
    backend_.copy_from_host(host, dev);
    Tensor back = Tensor::empty({37}, DType::F32);
    backend_.copy_to_host(dev, back);
    for (int64_t i = 0; i < 37; ++i) {
      const float x = host.data<float>()[i];
      const float want = dt == DType::BF16  ? bf16_to_float(float_to_bf16(x))
                         : dt == DType::F16 ? fp16_to_float(float_to_fp16(x))
                                            : x;
      EXPECT_EQ(back.data<float>()[i], want) << dtype_name(dt) << " element " << i;
    }
  }
  Tensor ids = Tensor::empty({3}, DType::I32);
  for (int i = 0; i < 3; ++i) ids.data<int32_t>()[i] = uniform_int(-5, 100000);
  Tensor dev_ids = backend_.alloc({3}, DType::I32);
  backend_.copy_from_host(ids, dev_ids);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(dev_ids.data<int32_t>()[i], ids.data<int32_t>()[i]);
  Tensor dev_f = backend_.alloc({3}, DType::F32);
  EXPECT_THROW(backend_.copy_from_host(ids, dev_f), Error) << "i32 does not convert to f32";
  Tensor wrong = backend_.alloc({4}, DType::I32);
  EXPECT_THROW(backend_.copy_from_host(ids, wrong), Error);
}

TEST_F(CpuMemoryTest, ReadsAreCollectedByTicket) {
  // A value read with begin_read is the one it had then, whatever the device does after.
  backend_.reserve(0, 0, 4096);
  Tensor dev = backend_.alloc({2}, DType::I32);
  Tensor host = Tensor::empty({2}, DType::I32), back = Tensor::empty({2}, DType::I32);
  std::vector<int64_t> tickets;
  for (int32_t i = 0; i < Backend::kPendingReads; ++i) {
    host.data<int32_t>()[0] = i, host.data<int32_t>()[1] = -i;
    backend_.copy_from_host(host, dev);
    tickets.push_back(backend_.begin_read(dev));
  }
  for (int32_t i = Backend::kPendingReads - 1; i >= 0; --i) {  // any order
    backend_.end_read(tickets[size_t(i)], back);
    EXPECT_EQ(back.data<int32_t>()[0], i);
    EXPECT_EQ(back.data<int32_t>()[1], -i);
  }
  EXPECT_THROW(backend_.end_read(tickets[0], back), Error) << "ended already";
  const int64_t abandoned = backend_.begin_read(dev);
  for (int i = 0; i < Backend::kPendingReads; ++i) backend_.begin_read(dev);
  EXPECT_THROW(backend_.end_read(abandoned, back), Error) << "expired";
  Tensor wrong = Tensor::empty({3}, DType::I32);
  EXPECT_THROW(backend_.end_read(backend_.begin_read(dev), wrong), Error);
  Tensor big = backend_.alloc({int64_t(Backend::kReadBytes)}, DType::I32);
  EXPECT_THROW(backend_.begin_read(big), Error) << "too large";
}

TEST_F(CpuMemoryTest, PublishedRowsAreFoundByTheirTag) {
  backend_.reserve(0, 0, 4096);
  Tensor table = backend_.alloc({5, 2}, DType::I32);
  for (int32_t i = 0; i < 10; ++i) table.data<int32_t>()[i] = 10 * i;
  Tensor row = backend_.alloc({1}, DType::I32), tag = backend_.alloc({1}, DType::I32);
  Tensor back = Tensor::empty({1, 2}, DType::I32);
  for (int32_t t = 40; t < 40 + Backend::kPendingReads; ++t) {
    row.data<int32_t>()[0] = t % 5, tag.data<int32_t>()[0] = t;
    backend_.publish_row(table, row, tag);
  }
  for (int32_t t = 40; t < 40 + Backend::kPendingReads; ++t) {
    backend_.wait_published(t, back);
    EXPECT_EQ(back.data<int32_t>()[0], 10 * (2 * (t % 5)));
    EXPECT_EQ(back.data<int32_t>()[1], 10 * (2 * (t % 5) + 1));
  }
  EXPECT_THROW(backend_.wait_published(39, back), Error) << "never published";
  row.data<int32_t>()[0] = 5;
  EXPECT_THROW(backend_.publish_row(table, row, tag), Error) << "row past the table";
  Tensor wide = backend_.alloc({2, int64_t(Backend::kReadBytes)}, DType::I32);
  row.data<int32_t>()[0] = 0;
  EXPECT_THROW(backend_.publish_row(wide, row, tag), Error) << "row too large";
}

}  // namespace
}  // namespace qwenvl::test
