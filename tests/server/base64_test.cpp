#include "server/base64.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace qwenvl {
namespace {

std::string decoded(const std::string& text) {
  const std::vector<uint8_t> bytes = decode_base64(text, "test");
  return std::string(bytes.begin(), bytes.end());
}

TEST(Base64, DecodesRfc4648Vectors) {
  EXPECT_EQ(decoded(""), "");
  EXPECT_EQ(decoded("Zg=="), "f");
  EXPECT_EQ(decoded("Zm8="), "fo");
  EXPECT_EQ(decoded("Zm9v"), "foo");
  EXPECT_EQ(decoded("Zm9vYg=="), "foob");
  EXPECT_EQ(decoded("Zm9vYmE="), "fooba");
  EXPECT_EQ(decoded("Zm9vYmFy"), "foobar");
  EXPECT_EQ(decoded("Zm9vYg"), "foob");  // padding is optional
  EXPECT_EQ(decode_base64("/+8=", "t"), (std::vector<uint8_t>{0xff, 0xef}));
}

TEST(Base64, RefusesWhatNoEncoderWrites) {
  EXPECT_THROW(decode_base64("Zm9v!", "t"), Error);
  EXPECT_THROW(decode_base64("Zm=9v", "t"), Error);  // padding in the middle
  EXPECT_THROW(decode_base64("Z", "t"), Error);
  EXPECT_THROW(decode_base64("Zm9v\n", "t"), Error);
  EXPECT_THROW(decode_base64("Zg===", "t"), Error);
}

}  // namespace
}  // namespace qwenvl
