#include "server/address_class.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "core/error.h"

namespace qwenvl {

namespace {

struct Range4 {
  uint32_t base;
  int bits;
  const char* kind;
};

constexpr uint32_t ip4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return a << 24 | b << 16 | c << 8 | d;
}

// IANA's IPv4 special-purpose registry, less the globally reachable entries.
constexpr Range4 kRefused4[] = {
    {ip4(0, 0, 0, 0), 8, "an unspecified ('this network') address"},
    {ip4(10, 0, 0, 0), 8, "a private address"},
    {ip4(100, 64, 0, 0), 10, "a shared (carrier-grade NAT) address"},
    {ip4(127, 0, 0, 0), 8, "a loopback address"},
    {ip4(169, 254, 0, 0), 16, "a link-local address"},
    {ip4(172, 16, 0, 0), 12, "a private address"},
    {ip4(192, 0, 0, 0), 24, "an IETF protocol assignment address"},
    {ip4(192, 0, 2, 0), 24, "a documentation address"},
    {ip4(192, 88, 99, 0), 24, "a 6to4 relay anycast address"},
    {ip4(192, 168, 0, 0), 16, "a private address"},
    {ip4(198, 18, 0, 0), 15, "a benchmarking address"},
    {ip4(198, 51, 100, 0), 24, "a documentation address"},
    {ip4(203, 0, 113, 0), 24, "a documentation address"},
    {ip4(224, 0, 0, 0), 4, "a multicast address"},
    {ip4(240, 0, 0, 0), 4, "a reserved or broadcast address"},
};

bool in_range(uint32_t address, uint32_t base, int bits) {
  const uint32_t mask = bits == 0 ? 0 : ~uint32_t(0) << (32 - bits);
  return (address & mask) == (base & mask);
}

uint32_t ipv4_at(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

bool prefix_is(const uint8_t (&b)[16], std::initializer_list<uint8_t> prefix) {
  size_t i = 0;
  for (uint8_t v : prefix)
    if (b[i++] != v) return false;
  return true;
}

// An embedded IPv4 address takes the IPv4 verdict, with the IPv6 form named.
std::optional<std::string> embedded(uint32_t v4, const char* form) {
  if (auto kind = refused_ipv4(v4)) return cat(*kind, " (", form, ")");
  return std::nullopt;
}

}  // namespace

std::optional<std::string> refused_ipv4(uint32_t address) {
  for (const Range4& r : kRefused4)
    if (in_range(address, r.base, r.bits)) return std::string(r.kind);
  return std::nullopt;
}

std::optional<std::string> refused_ipv6(const uint8_t (&b)[16]) {
  bool zero_96 = true;
  for (int i = 0; i < 12; ++i) zero_96 = zero_96 && b[i] == 0;
  if (zero_96) {
    const uint32_t low = ipv4_at(b + 12);
    if (low == 0) return "an unspecified address";
    if (low == 1) return "a loopback address";
    return cat("an IPv4-compatible address (deprecated)");
  }
  if (prefix_is(b, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}))
    return embedded(ipv4_at(b + 12), "IPv4-mapped");
  if (prefix_is(b, {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0}))
    return embedded(ipv4_at(b + 12), "NAT64");
  if (prefix_is(b, {0x20, 0x02})) return embedded(ipv4_at(b + 2), "6to4");
  if (prefix_is(b, {0x20, 0x01, 0x0d, 0xb8})) return "a documentation address";
  if (prefix_is(b, {0x20, 0x01, 0, 0})) return "a Teredo address";
  if ((b[0] & 0xfe) == 0xfc) return "a unique local (private) address";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "a link-local address";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return "a site-local address (deprecated)";
  if (b[0] == 0xff) return "a multicast address";
  if (prefix_is(b, {0x01, 0, 0, 0, 0, 0, 0, 0})) return "a discard-only address";
  return std::nullopt;
}

std::optional<std::string> refused_address(const sockaddr& address) {
  if (address.sa_family == AF_INET) {
    sockaddr_in in;
    std::memcpy(&in, &address, sizeof in);
    return refused_ipv4(ntohl(in.sin_addr.s_addr));
  }
  if (address.sa_family == AF_INET6) {
    sockaddr_in6 in6;
    std::memcpy(&in6, &address, sizeof in6);
    uint8_t bytes[16];
    std::memcpy(bytes, &in6.sin6_addr, 16);
    return refused_ipv6(bytes);
  }
  return "not an IPv4 or IPv6 address";
}

std::optional<std::string> refused_address(const std::string& numeric) {
  in_addr v4;
  if (inet_pton(AF_INET, numeric.c_str(), &v4) == 1) return refused_ipv4(ntohl(v4.s_addr));
  in6_addr v6;
  if (inet_pton(AF_INET6, numeric.c_str(), &v6) == 1) {
    uint8_t bytes[16];
    std::memcpy(bytes, &v6, 16);
    return refused_ipv6(bytes);
  }
  fail("'", numeric, "' is not a numeric IPv4 or IPv6 address");
}

}  // namespace qwenvl
