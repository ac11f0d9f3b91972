// KvBlocks: blocks handed out and returned, and the prefix cache: published blocks reused by
// their hash, counted per holder, kept while idle and evicted least recently released first.
#include "runtime/kv_blocks.h"

#include <gtest/gtest.h>

namespace qwenvl {
namespace {

ContentHash hash_of(uint64_t n) {
  ContentHasher h;
  h.add(n);
  return h.finish();
}

TEST(KvBlocks, GrowsAndReleasesWholeBlocks) {
  KvBlocks blocks(4);
  BlockTable a, b;
  EXPECT_TRUE(blocks.grow(a, 1));
  EXPECT_TRUE(blocks.grow(a, kKvBlockSize + 1));
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(blocks.free(), 2);
  EXPECT_FALSE(blocks.grow(b, 3 * kKvBlockSize)) << "three blocks of two free";
  EXPECT_TRUE(b.empty()) << "a failed grow takes nothing";
  blocks.release(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(blocks.free(), 4);
  EXPECT_EQ(kv_row(BlockTable{3, 1}, kKvBlockSize + 5), kKvBlockSize + 5);
}

TEST(KvBlocks, PublishedBlocksAreSharedAndCachedUntilNeeded) {
  KvBlocks blocks(3);
  BlockTable first;
  ASSERT_TRUE(blocks.grow(first, 2 * kKvBlockSize));
  blocks.publish(first[0], hash_of(1));
  blocks.publish(first[1], hash_of(2));
  EXPECT_EQ(blocks.cached(), 2);

  // A second sequence with the same start takes both blocks, one with another start none.
  BlockTable second, other;
  const ContentHash chain[] = {hash_of(1), hash_of(2), hash_of(3)};
  EXPECT_EQ(blocks.reuse(second, chain), 2);
  EXPECT_EQ(second, first);
  const ContentHash elsewhere[] = {hash_of(9), hash_of(2)};
  EXPECT_EQ(blocks.reuse(other, elsewhere), 0) << "a chain stops at its first miss";

  // Released by both, the blocks stay cached and still count as free.
  blocks.release(first);
  EXPECT_EQ(blocks.free(), 1);
  blocks.release(second);
  EXPECT_EQ(blocks.free(), 3);
  EXPECT_EQ(blocks.cached(), 2);
  BlockTable again;
  EXPECT_EQ(blocks.reuse(again, chain), 2);
  blocks.release(again);

  // A grow takes the free block first, then the least recently released cached one (block
  // first[1] went back before first[0]: a table returns its blocks from the end).
  BlockTable grown;
  ASSERT_TRUE(blocks.grow(grown, 2 * kKvBlockSize));
  EXPECT_EQ(blocks.cached(), 1);
  BlockTable after;
  EXPECT_EQ(blocks.reuse(after, chain), 1) << "the first block is still cached";
  blocks.release(after);
  blocks.release(grown);
}

TEST(KvBlocks, AHashPublishedTwiceKeepsItsFirstBlock) {
  KvBlocks blocks(2);
  BlockTable a, b;
  ASSERT_TRUE(blocks.grow(a, 1));
  ASSERT_TRUE(blocks.grow(b, 1));
  blocks.publish(a[0], hash_of(7));
  blocks.publish(b[0], hash_of(7));
  EXPECT_EQ(blocks.cached(), 1);
  blocks.release(b);  // private: free at once
  EXPECT_EQ(blocks.free(), 1);
  BlockTable c;
  const ContentHash chain[] = {hash_of(7)};
  EXPECT_EQ(blocks.reuse(c, chain), 1);
  EXPECT_EQ(c, a);
  blocks.release(a);
  blocks.release(c);
  EXPECT_EQ(blocks.free(), 2);
}

TEST(ContentHash, SameContentSameHashAndChainsDiffer) {
  ContentHasher a, b;
  const char text[] = "seventeen bytes!!";
  a.add(text, sizeof text);
  b.add(text, sizeof text);
  EXPECT_EQ(a.finish(), b.finish());
  ContentHasher shorter;
  shorter.add(text, sizeof text - 1);
  EXPECT_NE(shorter.finish(), a.finish());
  ContentHasher chained(hash_of(1)), other_chain(hash_of(2));
  chained.add(text, sizeof text);
  other_chain.add(text, sizeof text);
  EXPECT_NE(chained.finish(), other_chain.finish());
  EXPECT_NE(chained.finish(), a.finish());
}

}  // namespace
}  // namespace qwenvl
