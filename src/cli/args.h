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
  int64_t get_int(const std::string& name, int64_t fallback) const;
  double get_double(const std::string& name, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::multimap<std::string, std::string> values_;
  std::vector<std::pair<std::string, std::string>> ordered_;
  std::vector<std::string> positional_;
};

}  // namespace qwenvl::cli
