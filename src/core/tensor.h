#pragma once
// A dense, contiguous, row-major tensor: a pointer, a dtype, a shape and the device the pointer
// lives on. It may own its storage (Tensor::empty on the host, a backend's allocation) or view
// someone else's (a memory-mapped checkpoint, a slice of a workspace); `keep_alive` holds the
// owner.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "core/dtype.h"

namespace qwenvl {

enum class Device : uint8_t { CPU, CUDA };

class Shape {
 public:
  static constexpr int kMaxRank = 6;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  template <typename It>
  Shape(It begin, It end) {
    for (It it = begin; it != end; ++it) push_back(int64_t(*it));
  }
  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  int64_t numel() const;
  void push_back(int64_t d);
  const int64_t* begin() const { return dims_.data(); }
  const int64_t* end() const { return dims_.data() + rank_; }
  bool operator==(const Shape& other) const;
  std::string str() const;  // "[2, 3]"

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(void* data, DType dtype, Shape shape, Device device = Device::CPU,
         std::shared_ptr<void> keep_alive = {});

  // Host tensor with its own (uninitialised, 64-byte aligned) storage.
  static Tensor empty(Shape shape, DType dtype);

  bool defined() const { return data_ != nullptr || (shape_.numel() == 0 && shape_.rank() > 0); }
  void* data() const { return data_; }
  template <typename T>
  T* data() const {
    return static_cast<T*>(data_);
  }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i < 0 ? i + shape_.rank() : i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  const std::shared_ptr<void>& keep_alive() const { return keep_alive_; }

  // Same storage, another shape with the same number of elements.
  Tensor view(Shape shape) const;
  // Rows [begin, begin + count) along the first dimension; shares storage.
  Tensor rows(int64_t begin, int64_t count) const;

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
  Shape shape_;
  std::shared_ptr<void> keep_alive_;
};

}  // namespace qwenvl
