#include "server/address_class.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace qwenvl {
namespace {

// Every refused address names its kind; every public one passes.
void expect_refused(const std::string& address, const std::string& kind) {
  const auto verdict = refused_address(address);
  ASSERT_TRUE(verdict.has_value()) << address << " passed";
  EXPECT_NE(verdict->find(kind), std::string::npos) << address << ": " << *verdict;
}

void expect_public(const std::string& address) {
  const auto verdict = refused_address(address);
  EXPECT_FALSE(verdict.has_value()) << address << ": " << verdict.value_or("");
}

TEST(AddressClass, RefusesIpv4ThatIsNotPublic) {
  expect_refused("0.0.0.0", "unspecified");
  expect_refused("127.0.0.1", "loopback");
  expect_refused("127.255.255.254", "loopback");
  expect_refused("10.1.2.3", "private");
  expect_refused("172.16.0.1", "private");
  expect_refused("172.31.255.255", "private");
  expect_refused("192.168.1.1", "private");
  expect_refused("100.64.0.1", "carrier-grade");
  expect_refused("169.254.169.254", "link-local");  // cloud metadata
  expect_refused("224.0.0.1", "multicast");
  expect_refused("239.255.255.250", "multicast");
  expect_refused("255.255.255.255", "broadcast");
  expect_refused("198.18.0.1", "benchmarking");
  expect_refused("192.0.2.1", "documentation");
}

TEST(AddressClass, PassesPublicIpv4AtTheRangesEdges) {
  expect_public("8.8.8.8");
  expect_public("1.1.1.1");
  expect_public("172.15.255.255");
  expect_public("172.32.0.0");
  expect_public("100.63.255.255");
  expect_public("100.128.0.0");
  expect_public("11.0.0.1");
  expect_public("223.255.255.255");
  expect_public("169.253.255.255");
}

TEST(AddressClass, RefusesIpv6ThatIsNotPublic) {
  expect_refused("::", "unspecified");
  expect_refused("::1", "loopback");
  expect_refused("fe80::1", "link-local");
  expect_refused("febf:ffff::1", "link-local");
  expect_refused("fc00::1", "unique local");
  expect_refused("fd12:3456::1", "unique local");
  expect_refused("ff02::1", "multicast");
  expect_refused("2001:db8::1", "documentation");
  expect_refused("fec0::1", "site-local");
}

TEST(AddressClass, JudgesIpv6ThatEmbedsIpv4ByItsIpv4Address) {
  expect_refused("::ffff:127.0.0.1", "loopback");
  expect_refused("::ffff:10.0.0.1", "private");
  expect_refused("::ffff:169.254.169.254", "link-local");
  expect_refused("::ffff:7f00:1", "IPv4-mapped");
  expect_refused("::127.0.0.1", "IPv4-compatible");
  expect_refused("64:ff9b::192.168.0.1", "NAT64");
  expect_refused("2002:c0a8:0101::1", "6to4");  // 192.168.1.1
  expect_public("::ffff:8.8.8.8");
  expect_public("64:ff9b::8.8.8.8");
  expect_public("2002:0808:0808::1");
  expect_public("2606:4700:4700::1111");
  expect_public("2a00:1450:4001:80b::200e");
}

TEST(AddressClass, RefusesWhatIsNotANumericAddress) {
  EXPECT_THROW(refused_address(std::string("localhost")), Error);
  EXPECT_THROW(refused_address(std::string("127.1")), Error);
  EXPECT_THROW(refused_address(std::string("")), Error);
}

}  // namespace
}  // namespace qwenvl
