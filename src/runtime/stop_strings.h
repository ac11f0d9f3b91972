#pragma once
// Stop strings over streamed text: text is released as soon as it can no longer be the start of
// a stop string, and generation ends at the first complete one (the stop string itself and
// anything after it are not part of the output, as with OpenAI's `stop`).
#include <string>
#include <vector>

namespace qwenvl {

class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stops);

  // Adds newly decoded text; returns the part that is now safe to show.
  std::string push(const std::string& text);
  // End of generation: whatever was held back (no stop string completed).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace qwenvl
