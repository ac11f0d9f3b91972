#pragma once
// Standard output that reports its failures: a write that does not reach its destination (a full
// disk, a pipe whose reader left while SIGPIPE is ignored) is an Error and a non-zero exit, never
// output silently lost.
#include <string_view>

namespace qwenvl::cli {

// Writes `text` to stdout, flushing when `flush` is set; an Error when the stream has failed.
void write_stdout(std::string_view text, bool flush);

// An Error when anything written to stdout so far has failed to reach it (flushes first).
void check_stdout();

}  // namespace qwenvl::cli
