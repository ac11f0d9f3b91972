#pragma once
// Where a request's image_url may point. data: URLs carry the image itself; file:// URLs are
// read only under a directory the operator allowed; http(s) URLs are fetched only from the hosts
// the operator allowed, and only from public addresses (server/remote_media.h): fetching on a
// client's word is otherwise a server-side request forgery hole (CVE-2025-6242).
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/chat_request.h"
#include "server/remote_media.h"

namespace qwenvl {

struct MediaPolicy {
  std::string allowed_media_dir;                     // empty: file:// URLs are refused
  std::shared_ptr<const RemoteMediaFetcher> remote;  // null: http(s) URLs are refused
};

// The image an image_url names; `name` labels it in messages ("image 1"). Error (bad input) for
// a malformed or refused URL, bad base64 or a failed fetch; the bytes themselves are checked
// when decoded. A remote URL is fetched here, on the caller's thread.
ImageSource image_source_from_url(const std::string& url, const std::string& name,
                                  const MediaPolicy& policy);

}  // namespace qwenvl
