#include "backend/stacked_shape.h"

#include "core/error.h"

namespace qwenvl {

Shape stacked_shape(const std::vector<Tensor>& parts, const char* op) {
  if (parts.empty()) fail_internal(op, ": no parts to stack");
  Shape out = parts.front().shape();
  if (out.rank() < 1) fail_internal(op, ": parts must have at least one dimension");
  int64_t rows = 0;
  for (const Tensor& part : parts) {
    Shape tail = part.shape(), first_tail = out;
    if (tail.rank() != out.rank())
      fail_internal(op, ": parts of ranks ", tail.rank(), " and ", out.rank());
    tail[0] = first_tail[0] = 0;
    if (!(tail == first_tail))
      fail_internal(op, ": ", part.shape().str(), " and ", parts.front().shape().str(),
                    " differ beyond their first dimension");
    rows += part.shape()[0];
  }
  out[0] = rows;
  return out;
}

}  // namespace qwenvl
