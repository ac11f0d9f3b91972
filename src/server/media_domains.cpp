#include "server/media_domains.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace qwenvl {

namespace {

std::string normalized(std::string host) {
  for (char& c : host) c = char(std::tolower(uint8_t(c)));
  if (!host.empty() && host.back() == '.') host.pop_back();
  return host;
}

bool valid_host_char(char c) {
  return std::isalnum(uint8_t(c)) || c == '-' || c == '.' || c == ':' || c == '[' || c == ']';
}

}  // namespace

MediaDomains MediaDomains::parse(const std::string& list) {
  MediaDomains out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t end = std::min(list.find(',', start), list.size());
    std::string entry = list.substr(start, end - start);
    entry.erase(0, entry.find_first_not_of(' '));
    entry.erase(entry.find_last_not_of(' ') + 1);
    const bool wildcard = entry.rfind("*.", 0) == 0;
    std::string host = normalized(wildcard ? entry.substr(2) : entry);
    if (host.empty() || !std::all_of(host.begin(), host.end(), valid_host_char) ||
        host.front() == '.')
      fail("--allowed-media-domains: '", entry,
           "' is not a host name or *.domain (expected e.g. images.example.com,*.example.org)");
    out.entries_.push_back(wildcard ? "." + host : host);
    start = end + 1;
  }
  return out;
}

bool MediaDomains::allows(const std::string& host) const {
  const std::string h = normalized(host);
  if (h.empty()) return false;
  for (const std::string& e : entries_) {
    if (e.front() == '.') {
      if (h.size() > e.size() && h.compare(h.size() - e.size(), e.size(), e) == 0) return true;
    } else if (h == e) {
      return true;
    }
  }
  return false;
}

}  // namespace qwenvl
