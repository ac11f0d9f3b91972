#pragma once
// --allowed-media-domains: the hosts whose http(s) image URLs the server fetches. An entry is a
// host name matched exactly ("images.example.com") or "*.example.com", which matches any name
// below example.com but not example.com itself. Matching ignores case and a trailing dot.
#include <string>
#include <vector>

namespace qwenvl {

class MediaDomains {
 public:
  MediaDomains() = default;
  // "a.com,*.b.org"; Error for an empty or malformed entry.
  static MediaDomains parse(const std::string& list);

  bool empty() const { return entries_.empty(); }
  bool allows(const std::string& host) const;

 private:
  std::vector<std::string> entries_;  // lower case; "*.x" kept as ".x"
};

}  // namespace qwenvl
