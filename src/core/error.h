#pragma once
// The one exception type qwenvl throws. It carries one human sentence (what went wrong, where, and
// what to do) and a category, so that the edges can tell a user's mistake from a machine's limit,
// a lost device or a bug: the CLI maps the category to an exit code (exit_code below), the server
// to an HTTP status.
#include <sstream>
#include <stdexcept>
#include <string>

namespace qwenvl {

enum class ErrorKind {
  BadInput,       // files, flags, prompts, images, requests a user can fix
  ResourceLimit,  // memory or a budget too small for what was asked
  Device,         // the accelerator failed or was lost (CUDA, cuBLAS)
  Internal,       // an invariant broke: a bug in qwenvl
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ErrorKind kind = ErrorKind::BadInput)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// What the CLI makes of each category, in ErrorKind's order: its exit status (README "Exit status
// and limits"; 2 is main.cpp's usage error) and the label its one-line message carries.
struct ErrorKindOutcome {
  int exit_code;
  const char* label;
};
inline constexpr ErrorKindOutcome kErrorKindOutcomes[] = {
    {1, "error"},           // BadInput
    {3, "resource limit"},  // ResourceLimit
    {4, "device error"},    // Device
    {5, "internal error"},  // Internal
};
constexpr int exit_code(ErrorKind kind) { return kErrorKindOutcomes[int(kind)].exit_code; }
constexpr const char* error_label(ErrorKind kind) { return kErrorKindOutcomes[int(kind)].label; }

// Concatenates any streamable values: cat("tensor ", name, " has ", n, " dims").
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

// Bad input: what a user gave (a file, a flag, a prompt, an image) cannot be used.
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw Error(cat(parts...), ErrorKind::BadInput);
}

// A resource limit: the input is fine, but memory or a budget does not hold what it needs.
template <typename... Parts>
[[noreturn]] void fail_resource(const Parts&... parts) {
  throw Error(cat(parts...), ErrorKind::ResourceLimit);
}

// The accelerator reported a failure.
template <typename... Parts>
[[noreturn]] void fail_device(const Parts&... parts) {
  throw Error(cat(parts...), ErrorKind::Device);
}

// An invariant of qwenvl's own broke.
template <typename... Parts>
[[noreturn]] void fail_internal(const Parts&... parts) {
  throw Error(cat(parts...), ErrorKind::Internal);
}

// For internal invariants that user input cannot break; still an exception, never abort().
#define QWENVL_CHECK(cond, ...)                                                                \
  do {                                                                                         \
    if (!(cond))                                                                               \
      ::qwenvl::fail_internal("at ", __FILE__, ":", __LINE__, ": ", #cond " ", ##__VA_ARGS__); \
  } while (0)

}  // namespace qwenvl
