#include "server/media.h"

#include <filesystem>
#include <string_view>

#include "core/error.h"
#include "server/base64.h"

namespace qwenvl {

namespace {

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(uint8_t(text[i])) != prefix[i]) return false;
  return true;
}

// data:image/png;base64,AAAA (RFC 2397; only base64 bodies: images are binary).
ImageSource from_data_url(std::string_view url, const std::string& name) {
  const size_t comma = url.find(',');
  if (comma == std::string_view::npos) fail(name, ": the data: URL has no ',' before its data");
  const std::string_view header = url.substr(5, comma - 5);
  if (!starts_with_nocase(header, "image/"))
    fail(name, ": the data: URL's media type must be image/..., got '", header, "'");
  if (header.size() < 7 || header.substr(header.size() - 7) != ";base64")
    fail(name, ": the data: URL must be base64 (data:image/TYPE;base64,...)");
  ImageSource source;
  source.name = name;
  source.bytes = decode_base64(url.substr(comma + 1), name);
  if (source.bytes.empty()) fail(name, ": the data: URL holds no bytes");
  return source;
}

ImageSource from_file_url(std::string_view url, const std::string& name,
                          const MediaPolicy& policy) {
  if (policy.allowed_media_dir.empty())
    fail(name,
         ": file:// image URLs are refused (the server was started without "
         "--allowed-media-dir)");
  std::string_view rest = url.substr(7);
  if (starts_with_nocase(rest, "localhost/")) rest.remove_prefix(9);
  if (rest.empty() || rest.front() != '/')
    fail(name, ": a file:// URL must name an absolute path (file:///dir/image.png)");
  if (rest.find('%') != std::string_view::npos)
    fail(name, ": percent-encoded file:// URLs are not accepted; give the path as it is");
  // Symbolic links and ".." are resolved before the check, so neither leads outside the folder.
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path path = fs::weakly_canonical(fs::path(std::string(rest)), error);
  const fs::path root = fs::weakly_canonical(fs::path(policy.allowed_media_dir), error);
  if (error) fail(name, ": cannot resolve the file:// path");
  const auto [root_end, path_it] =
      std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  if (root_end != root.end() || path_it == path.end())
    fail(name, ": the file is outside the server's --allowed-media-dir");
  ImageSource source;
  source.name = name;
  source.path = path.string();
  return source;
}

}  // namespace

ImageSource image_source_from_url(const std::string& url, const std::string& name,
                                  const MediaPolicy& policy) {
  if (starts_with_nocase(url, "data:")) return from_data_url(url, name);
  if (starts_with_nocase(url, "file://")) return from_file_url(url, name, policy);
  if (starts_with_nocase(url, "http://") || starts_with_nocase(url, "https://")) {
    if (!policy.remote)
      fail(name,
           ": remote image URLs are not fetched by this server (it was started without "
           "--allowed-media-domains); send the image inline as a data:image/...;base64,... URL");
    ImageSource source;
    source.name = name;
    const std::string body = policy.remote->fetch(url, name);
    source.bytes.assign(body.begin(), body.end());
    return source;
  }
  fail(name, ": unsupported image URL (expected data:image/...;base64,..., file:// or http(s)://)");
}

}  // namespace qwenvl
