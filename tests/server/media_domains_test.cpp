#include "server/media_domains.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace qwenvl {
namespace {

TEST(MediaDomains, MatchesExactHostsAndWildcardSubdomains) {
  const MediaDomains d = MediaDomains::parse("images.example.com, *.cdn.org,127.0.0.1");
  EXPECT_TRUE(d.allows("images.example.com"));
  EXPECT_TRUE(d.allows("IMAGES.Example.COM."));
  EXPECT_FALSE(d.allows("example.com"));
  EXPECT_FALSE(d.allows("evil-images.example.com"));
  EXPECT_FALSE(d.allows("images.example.com.evil.net"));
  EXPECT_TRUE(d.allows("a.cdn.org"));
  EXPECT_TRUE(d.allows("a.b.cdn.org"));
  EXPECT_FALSE(d.allows("cdn.org"));
  EXPECT_FALSE(d.allows("evilcdn.org"));
  EXPECT_TRUE(d.allows("127.0.0.1"));
  EXPECT_FALSE(d.allows(""));
}

TEST(MediaDomains, RefusesMalformedLists) {
  EXPECT_THROW(MediaDomains::parse(""), Error);
  EXPECT_THROW(MediaDomains::parse("a.com,,b.com"), Error);
  EXPECT_THROW(MediaDomains::parse("*"), Error);
  EXPECT_THROW(MediaDomains::parse("*.*.com"), Error);
  EXPECT_THROW(MediaDomains::parse("user@host.com"), Error);
  EXPECT_THROW(MediaDomains::parse("http://host.com"), Error);
  EXPECT_THROW(MediaDomains::parse(".host.com"), Error);
}

}  // namespace
}  // namespace qwenvl
