#pragma once
// Where a request's image_url may point. data: URLs carry the image itself; file:// URLs are
// read only under a directory the operator allowed; remote http(s) URLs are refused: fetching
// them on a client's word is a server-side request forgery hole (CVE-2025-6242) unless hosts are
// allow-listed and private addresses refused, which this server does not do yet.
#include <cstdint>
#include <string>

#include "runtime/chat_request.h"

namespace qwenvl {

struct MediaPolicy {
  std::string allowed_media_dir;  // empty: file:// URLs are refused
};

// The image an image_url names; `name` labels it in messages ("image 1"). Error (bad input) for
// a malformed or refused URL or bad base64; the bytes themselves are checked when decoded.
ImageSource image_source_from_url(const std::string& url, const std::string& name,
                                  const MediaPolicy& policy);

}  // namespace qwenvl
