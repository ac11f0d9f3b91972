#pragma once
// Takes parameters from a Checkpoint onto a backend by canonical name, and counts the bytes so the
// model can reserve weight memory before uploading. A backend that computes in f32 (the CPU)
// reads weights in the checkpoint's dtype where they are mapped: nothing to copy or count. A
// 16-bit backend (CUDA) holds every weight in its compute dtype: bf16 and fp16 do not mix in one
// matrix product, and `--dtype fp16` on a bf16 checkpoint converts once at upload.
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/packed_int4.h"
#include "backend/residue_first.h"
#include "checkpoint/checkpoint.h"

namespace qwenvl {

class WeightLoader {
 public:
  // backend may be null: then nothing is uploaded and only bytes() is counted (planning pass).
  WeightLoader(const Checkpoint& checkpoint, Backend* backend, DType compute)
      : checkpoint_(checkpoint), backend_(backend), compute_(compute) {}

  // A projection's weight "X.weight" that the checkpoint stores as AWQ's X.qweight / X.qzeros /
  // X.scales comes as a packed 4-bit weight (DType::Q4, backend/packed_int4.h), from get and
  // stacked alike; every part of a stacked weight must then be quantized.
  Tensor get(const std::string& name);
  // A parameter seen with another shape of the same size (the patch embedding's Conv3d kernel as a
  // [hidden, 3·2·14·14] matrix).
  Tensor reshaped(const std::string& name, Shape shape);
  // Parameters stacked along their first dimension into one (a fused projection: q/k/v, gate/up),
  // each part's rows stored as they are or, with residue_first, as ResidueFirst{its rows} lays
  // them out (zero rows in the gap).
  Tensor stacked(const std::vector<std::string>& names, bool residue_first = false);
  // A matrix whose columns are stored as ResidueFirst{its columns} lays them out.
  Tensor residue_first_columns(const std::string& name);

  size_t bytes() const { return bytes_; }

 private:
  // An f32 backend computes from the checkpoint's own bytes (see above).
  bool in_place() const { return compute_ == DType::F32; }
  Tensor upload(const Tensor& host);
  void count(int64_t elements, DType dtype);
  // Whether `name` ("X.weight") is stored as AWQ tensors, and then its packed form (planning
  // pass: an undefined tensor of the right byte count is counted instead, see quantized_shape).
  bool quantized(const std::string& name) const;
  Int4Layout quantized_layout(const std::string& name) const;
  Shape quantized_shape(const std::string& name) const;
  Tensor packed(const std::string& name) const;
  Tensor stacked_quantized(const std::vector<std::string>& names);

  const Checkpoint& checkpoint_;
  Backend* backend_;
  DType compute_;
  size_t bytes_ = 0;
};

}  // namespace qwenvl
