#pragma once
// The one error type qwenvl throws for anything a user can cause (bad files, bad flags, too-long
// prompts). It carries one human sentence: what went wrong, where, and what to do. The CLI prints
// it as one line and exits non-zero; the server turns it into a 4xx answer.
#include <sstream>
#include <stdexcept>
#include <string>

namespace qwenvl {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates any streamable values: cat("tensor ", name, " has ", n, " dims").
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw Error(cat(parts...));
}

// For internal invariants that user input cannot break; still an exception, never abort().
#define QWENVL_CHECK(cond, ...)                                                        \
  do {                                                                                 \
    if (!(cond)) ::qwenvl::fail("internal error at ", __FILE__, ":", __LINE__, ": ", \
                                #cond " ", ##__VA_ARGS__);                             \
  } while (0)

}  // namespace qwenvl
