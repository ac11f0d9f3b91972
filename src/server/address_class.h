#pragma once
// Which network addresses a remote image fetch may connect to: public unicast only. A client
// that names a URL must not reach the server's own machine or network through it (server-side
// request forgery, CVE-2025-6242): loopback, private (RFC 1918, unique local), carrier-grade
// NAT, link-local (cloud metadata services live at 169.254.169.254), multicast, broadcast,
// unspecified, reserved and documentation ranges are refused, and so is an IPv6 address that
// embeds an IPv4 one (mapped, compatible, NAT64, 6to4) whose IPv4 address is refused.
#include <cstdint>
#include <optional>
#include <string>

struct sockaddr;

namespace qwenvl {

// The kind of a refused address ("a loopback address", ...), or nullopt for a public one.
std::optional<std::string> refused_ipv4(uint32_t address);  // host byte order
std::optional<std::string> refused_ipv6(const uint8_t (&bytes)[16]);
// An AF_INET or AF_INET6 socket address; any other family is refused.
std::optional<std::string> refused_address(const sockaddr& address);
// A numeric address ("10.0.0.1", "::ffff:127.0.0.1"); Error if it is not one.
std::optional<std::string> refused_address(const std::string& numeric);

}  // namespace qwenvl
