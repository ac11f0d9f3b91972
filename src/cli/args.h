#pragma once
// A small flag parser shared by the subcommands: `--name value`, `--name=value`, boolean
// `--flag`, repeated flags; an unknown flag or a missing value is an Error naming it.
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qwenvl::cli {

class Args {
 public:
  // `value_flags` take a value, `bool_flags` do not; both without the leading "--".
  Args(int argc, char** argv, const std::vector<std::string>& value_flags,
       const std::vector<std::string>& bool_flags);

  bool has(const std::string& name) const;
  std::optional<std::string> get(const std::string& name) const;  // last occurrence
  std::vector<std::string> all(const std::string& name) const;    // every occurrence, in order
  std::string require(const std::string& name) const;
  // The flag's value as a number in [min, max], or `fallback` when the flag is absent. An Error
  // names the flag for anything else: not a number, trailing text, overflow, NaN or infinity, or
  // a value outside the range.
  int64_t get_int(const std::string& name, int64_t fallback, int64_t min, int64_t max) const;
  double get_double(const std::string& name, double fallback, double min, double max) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::multimap<std::string, std::string> values_;
  std::vector<std::pair<std::string, std::string>> ordered_;
  std::vector<std::string> positional_;
};

// The text of a prompt file: `path`, or standard input for "-"; regular files only, at most
// kMaxPromptFileBytes (core/file_read.h). `flag` names the flag in errors.
std::string read_prompt_file(const std::string& path, const std::string& flag);

}  // namespace qwenvl::cli
