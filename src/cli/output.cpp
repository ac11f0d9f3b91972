#include "cli/output.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace qwenvl::cli {

void write_stdout(std::string_view text, bool flush) {
  errno = 0;
  bool ok = text.empty() || std::fwrite(text.data(), 1, text.size(), stdout) == text.size();
  if (flush) ok = std::fflush(stdout) == 0 && ok;
  if (!ok || std::ferror(stdout))
    fail("cannot write to standard output: ", errno ? std::strerror(errno) : "write failed");
}

void check_stdout() { write_stdout({}, true); }

}  // namespace qwenvl::cli
