#include "core/tensor.h"

#include <cstdlib>
#include <sstream>

#include "core/error.h"

namespace qwenvl {

Shape::Shape(std::initializer_list<int64_t> dims) {
  for (int64_t d : dims) push_back(d);
}

void Shape::push_back(int64_t d) {
  if (rank_ == kMaxRank) fail("tensor rank above ", kMaxRank, " is not supported");
  dims_[rank_++] = d;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != other.dims_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::ostringstream out;
  out << '[';
  for (int i = 0; i < rank_; ++i) out << (i ? ", " : "") << dims_[i];
  out << ']';
  return out.str();
}

Tensor::Tensor(void* data, DType dtype, Shape shape, Device device,
               std::shared_ptr<void> keep_alive)
    : data_(data),
      dtype_(dtype),
      device_(device),
      shape_(shape),
      keep_alive_(std::move(keep_alive)) {}

Tensor Tensor::empty(Shape shape, DType dtype) {
  size_t bytes = size_t(shape.numel()) * dtype_size(dtype);
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!p) fail("out of host memory allocating ", bytes, " bytes for a ", shape.str(), " tensor");
  std::shared_ptr<void> owner(p, std::free);
  return Tensor(p, dtype, shape, Device::CPU, std::move(owner));
}

Tensor Tensor::view(Shape shape) const {
  QWENVL_CHECK(shape.numel() == numel(), "view ", shape.str(), " of ", shape_.str());
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t count) const {
  QWENVL_CHECK(rank() >= 1 && begin >= 0 && count >= 0 && begin + count <= shape_[0], "rows ",
               begin, "+", count, " of ", shape_.str());
  Tensor t = *this;
  t.shape_[0] = count;
  size_t row_bytes = shape_[0] ? nbytes() / size_t(shape_[0]) : 0;
  t.data_ = static_cast<char*>(data_) + size_t(begin) * row_bytes;
  return t;
}

}  // namespace qwenvl
