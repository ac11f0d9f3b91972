#include "cli/args.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/file_read.h"

namespace qwenvl::cli {

namespace {
bool contains(const std::vector<std::string>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}
}  // namespace

Args::Args(int argc, char** argv, const std::vector<std::string>& value_flags,
           const std::vector<std::string>& bool_flags) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      positional_.push_back(arg);
      continue;
    }
    const std::string body = arg.substr(2);
    const size_t eq = body.find('=');
    const bool inline_value = eq != std::string::npos;
    const std::string name = inline_value ? body.substr(0, eq) : body;
    std::string value = inline_value ? body.substr(eq + 1) : std::string();
    if (contains(bool_flags, name)) {
      if (inline_value) fail("flag --", name, " takes no value");
      value = std::string(1, '1');
    } else if (contains(value_flags, name)) {
      if (!inline_value) {
        if (i + 1 >= argc) fail("flag --", name, " needs a value");
        value = argv[++i];
      }
    } else {
      fail("unknown flag --", name, " (see --help)");
    }
    values_.emplace(name, value);
    ordered_.emplace_back(name, value);
  }
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::optional<std::string> Args::get(const std::string& name) const {
  std::optional<std::string> last;
  for (const auto& [k, v] : ordered_)
    if (k == name) last = v;
  return last;
}

std::vector<std::string> Args::all(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : ordered_)
    if (k == name) out.push_back(v);
  return out;
}

std::string Args::require(const std::string& name) const {
  auto v = get(name);
  if (!v) fail("missing required flag --", name);
  return *v;
}

int64_t Args::get_int(const std::string& name, int64_t fallback, int64_t min, int64_t max) const {
  auto v = get(name);
  if (!v) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0') fail("flag --", name, " expects an integer, got '", *v, "'");
  if (errno == ERANGE || x < min || x > max)
    fail("flag --", name, " must be in [", min, ", ", max, "], got ", *v);
  return x;
}

double Args::get_double(const std::string& name, double fallback, double min, double max) const {
  auto v = get(name);
  if (!v) return fallback;
  char* end = nullptr;
  const double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0') fail("flag --", name, " expects a number, got '", *v, "'");
  if (!std::isfinite(x) || x < min || x > max)
    fail("flag --", name, " must be a number in [", min, ", ", max, "], got ", *v);
  return x;
}

std::string read_prompt_file(const std::string& path, const std::string& flag) {
  if (path == "-") return read_stdin(kMaxPromptFileBytes, "text of " + flag);
  return read_text_file(path, kMaxPromptFileBytes, "file of " + flag);
}

}  // namespace qwenvl::cli
