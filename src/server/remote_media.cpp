#include "server/remote_media.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cctype>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "server/address_class.h"

namespace qwenvl {

namespace {

using Clock = std::chrono::steady_clock;

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // without brackets
  int port = 0;
  std::string target;  // path and query, "/" at least
};

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(uint8_t(c)));
  return s;
}

// scheme://host[:port][/path][?query][#fragment]; no user info (a classic way to disguise the
// host), no spaces or control characters.
Url parse_url(const std::string& text, const std::string& name) {
  for (char c : text)
    if (uint8_t(c) <= 0x20 || uint8_t(c) == 0x7f)
      fail(name, ": the image URL contains a space or control character");
  const size_t colon = text.find("://");
  if (colon == std::string::npos) fail(name, ": '", text, "' is not an absolute URL");
  Url url;
  url.scheme = lower(text.substr(0, colon));
  if (url.scheme != "http" && url.scheme != "https")
    fail(name, ": only http:// and https:// image URLs are fetched");
  const size_t start = colon + 3;
  const size_t end = std::min(text.find_first_of("/?#", start), text.size());
  const std::string authority = text.substr(start, end - start);
  if (authority.find('@') != std::string::npos)
    fail(name, ": image URLs with user information (user@host) are refused");
  std::string port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) fail(name, ": the URL's IPv6 host has no ']'");
    url.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') fail(name, ": malformed host in the image URL");
      port = authority.substr(close + 2);
    }
  } else {
    const size_t p = authority.rfind(':');
    url.host = authority.substr(0, p);
    if (p != std::string::npos) port = authority.substr(p + 1);
  }
  url.host = lower(url.host);
  if (url.host.empty()) fail(name, ": the image URL has no host");
  url.port = url.scheme == "https" ? 443 : 80;
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) < 1 || std::stoi(port) > 65535)
      fail(name, ": the image URL's port '", port, "' is not a port number");
    url.port = std::stoi(port);
  }
  url.target = text.substr(end);
  url.target = url.target.substr(0, url.target.find('#'));
  if (url.target.empty() || url.target.front() == '?') url.target = "/" + url.target;
  return url;
}

// A Location header against the URL that sent it.
std::string resolve_location(const Url& base, const std::string& location) {
  if (location.find("://") != std::string::npos) return location;
  const std::string origin =
      base.scheme + "://" +
      (base.host.find(':') != std::string::npos ? "[" + base.host + "]" : base.host) + ":" +
      std::to_string(base.port);
  if (location.rfind("//", 0) == 0) return base.scheme + ":" + location;
  if (!location.empty() && location.front() == '/') return origin + location;
  const std::string path = base.target.substr(0, base.target.find('?'));
  return origin + path.substr(0, path.rfind('/') + 1) + location;
}

std::string numeric(const sockaddr& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.sa_family == AF_INET) {
    sockaddr_in in;
    std::memcpy(&in, &address, sizeof in);
    inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
  } else {
    sockaddr_in6 in6;
    std::memcpy(&in6, &address, sizeof in6);
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
  }
  return text;
}

// The one address the fetch connects to: the host's first, once every address it resolves to
// has passed (a name that also resolves to a private address is refused outright).
std::string checked_address(const std::string& host, bool allow_loopback, const std::string& name) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || !found)
    fail(name, ": cannot resolve the image host '", host, "'");
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(found, freeaddrinfo);
  std::string first;
  for (const addrinfo* a = found; a; a = a->ai_next) {
    if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
    const std::string address = numeric(*a->ai_addr);
    if (auto refused = refused_address(*a->ai_addr)) {
      if (!(allow_loopback && *refused == "a loopback address"))
        fail(name, ": the image host '", host, "' resolves to ", address, ", ", *refused,
             "; remote images are fetched from public addresses only");
    }
    if (first.empty()) first = address;
  }
  if (first.empty()) fail(name, ": the image host '", host, "' has no IPv4 or IPv6 address");
  return first;
}

}  // namespace

RemoteMediaFetcher::RemoteMediaFetcher(RemoteMediaOptions options, LoopbackForTests loopback)
    : options_(std::move(options)), allow_loopback_(loopback == LoopbackForTests::kAllowed) {}

std::string RemoteMediaFetcher::fetch(const std::string& first_url, const std::string& name) const {
  const Clock::time_point deadline = Clock::now() + options_.timeout;
  std::string url_text = first_url;
  for (int redirects = 0;; ++redirects) {
    const Url url = parse_url(url_text, name);
    if (!options_.domains.allows(url.host))
      fail(name, ": the image host '", url.host,
           "' is not in the server's --allowed-media-domains");
    const std::string address = checked_address(url.host, allow_loopback_, name);
    const auto left =
        std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
    if (left.count() <= 0) fail(name, ": fetching the image took longer than the time limit");

    httplib::Client client(
        url.scheme + "://" +
        (url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host) + ":" +
        std::to_string(url.port));
    client.set_hostname_addr_map({{url.host, address}});
    client.set_follow_location(false);
    client.set_keep_alive(false);
    client.set_connection_timeout(left);
    client.set_read_timeout(left);
    client.set_write_timeout(left);
    if (url.scheme == "https") {
      client.enable_server_certificate_verification(true);
      if (!options_.ca_cert_path.empty()) client.set_ca_cert_path(options_.ca_cert_path);
    }

    int status = 0;
    std::string location, refusal, body;
    const auto on_response = [&](const httplib::Response& response) {
      status = response.status;
      if (status >= 300 && status < 400) {
        location = response.get_header_value("Location");
        return false;  // the body of a redirect is not needed
      }
      if (status != 200) {
        refusal = cat("the image URL answered HTTP status ", status);
        return false;
      }
      const std::string length = response.get_header_value("Content-Length");
      if (!length.empty() && length.size() < 20 &&
          length.find_first_not_of("0123456789") == std::string::npos &&
          std::stoull(length) > uint64_t(options_.max_bytes)) {
        refusal = cat("the image is larger than ", options_.max_bytes, " bytes");
        return false;
      }
      return true;
    };
    const auto on_data = [&](const char* data, size_t size) {
      if (int64_t(body.size() + size) > options_.max_bytes) {
        refusal = cat("the image is larger than ", options_.max_bytes, " bytes");
        return false;
      }
      if (Clock::now() > deadline) {
        refusal = "fetching the image took longer than the time limit";
        return false;
      }
      body.append(data, size);
      return true;
    };
    const httplib::Result result =
        client.Get(url.target, {{"Accept", "image/*"}}, on_response, on_data);
    if (!refusal.empty()) fail(name, ": ", refusal, " (", url_text, ")");
    if (status >= 300 && status < 400) {
      if (location.empty()) fail(name, ": the image URL redirected without a Location");
      if (redirects >= options_.max_redirects)
        fail(name, ": the image URL redirected more than ", options_.max_redirects, " times");
      url_text = resolve_location(url, location);
      continue;
    }
    if (!result) {
      // A read that ran out its timeout ends at the deadline, give or take the timer's slack.
      if (Clock::now() + std::chrono::milliseconds(20) >= deadline)
        fail(name, ": fetching the image took longer than the time limit (", url_text, ")");
      fail(name, ": cannot fetch the image (", httplib::to_string(result.error()), ", ", url_text,
           ")");
    }
    if (body.empty()) fail(name, ": the image URL answered with no bytes");
    return body;
  }
}

}  // namespace qwenvl
