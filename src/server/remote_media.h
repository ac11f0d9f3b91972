#pragma once
// http(s) image URLs, fetched only from the hosts of --allowed-media-domains and only from
// public addresses (server/address_class.h). The host is resolved once, every address it
// resolves to is checked, and the connection goes to the checked address (httplib's host to
// address map), so a second lookup cannot swap in another (DNS rebinding). Redirects are
// followed by hand, a few at most, each checked as the first URL was. The body is capped and
// the whole fetch, redirects included, has one deadline.
#include <chrono>
#include <cstdint>
#include <string>

#include "server/media_domains.h"

namespace qwenvl {

struct RemoteMediaOptions {
  MediaDomains domains;
  int64_t max_bytes = int64_t(32) << 20;
  std::chrono::milliseconds timeout{10000};
  int max_redirects = 3;
  // https: the certificates (PEM file) that server certificates must chain to; empty: the
  // system's store. Certificates and host names are always verified.
  std::string ca_cert_path;
};

// Whether a fetch may connect to loopback addresses. Only tests pass kAllowed (their image
// server listens on 127.0.0.1); no flag reaches it, and private, link-local and other refused
// addresses stay refused either way.
enum class LoopbackForTests { kRefused, kAllowed };

class RemoteMediaFetcher {
 public:
  explicit RemoteMediaFetcher(RemoteMediaOptions options,
                              LoopbackForTests loopback = LoopbackForTests::kRefused);

  // The body `url` answers with (status 200). Error (bad input) naming `name` ("image 1") for a
  // host not allowed, an address refused, too many redirects, a body over the cap, a timeout or
  // any other failure.
  std::string fetch(const std::string& url, const std::string& name) const;

 private:
  RemoteMediaOptions options_;
  bool allow_loopback_;
};

}  // namespace qwenvl
