#pragma once
// Takes parameters from a Checkpoint onto a backend by canonical name, and counts the bytes so the
// model can reserve weight memory before uploading. A backend that computes in f32 (the CPU)
// reads weights in the checkpoint's dtype where they are mapped: nothing to copy or count. A
// 16-bit backend (CUDA) holds every weight in its compute dtype: bf16 and fp16 do not mix in one
// matrix product, and `--dtype fp16` on a bf16 checkpoint converts once at upload.
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/packed_int4.h"
#include "backend/residue_first.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/quantization.h"

namespace qwenvl {

class WeightLoader {
 public:
  // backend may be null: then nothing is uploaded and only bytes() is counted (planning pass).
  // quantization: the model config's (its fp8_at_load asks for FP8 projections).
  WeightLoader(const Checkpoint& checkpoint, Backend* backend, DType compute,
               const QuantizationConfig& quantization)
      : checkpoint_(checkpoint),
        backend_(backend),
        compute_(compute),
        quantization_(quantization) {}

  // A projection's weight "X.weight" that the checkpoint stores as AWQ's X.qweight / X.qzeros /
  // X.scales comes as a packed 4-bit weight (DType::Q4, backend/packed_int4.h), from get and
  // stacked alike; every part of a stacked weight must then be quantized. With fp8_at_load, a
  // decoder projection's 16-bit weight comes as an FP8 one (DType::F8E4M3, backend/packed_fp8.h),
  // quantized on the host as it is read (one tensor at a time, never the whole model twice).
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

  // Uploads until end_group form one streamed group of `sequence` (Backend::begin_streamed_group):
  // kept in host memory and copied to the device for each use. Counted apart from bytes().
  void begin_group(int sequence);
  int end_group();  // the group's id; -1 in a planning pass

  // Called after each parameter is uploaded with the checkpoint bytes read so far (loading
  // progress); not called in a planning pass.
  void set_progress(std::function<void(size_t read_bytes)> progress) {
    progress_ = std::move(progress);
  }

  size_t bytes() const { return bytes_; }  // resident weights
  size_t streamed_bytes() const { return streamed_bytes_; }
  size_t largest_group_bytes() const { return largest_group_; }

 private:
  // An f32 backend computes from the checkpoint's own bytes (see above).
  bool in_place() const { return compute_ == DType::F32; }
  Tensor upload(const Tensor& host);
  // An upload of several parts stacked (one part: a plain parameter) in `dtype`. read_bytes: the
  // checkpoint bytes they were made from, for the progress report (0: the parts' own bytes).
  Tensor upload_stacked(const std::vector<Tensor>& parts, DType dtype, size_t read_bytes = 0);
  void count(int64_t elements, DType dtype);
  void report(size_t read_bytes);
  // Whether `name` ("X.weight") is stored as AWQ tensors, and then its packed form (planning
  // pass: an undefined tensor of the right byte count is counted instead, see quantized_shape).
  bool quantized(const std::string& name) const;
  Int4Layout quantized_layout(const std::string& name) const;
  Shape quantized_shape(const std::string& name) const;
  Tensor packed(const std::string& name) const;
  // The packed weights of `names` stacked into one (every one quantized), counted and uploaded
  // as upload_stacked does.
  Tensor upload_quantized(const std::vector<std::string>& names);
  // Whether `name` is a projection that fp8_at_load converts; then the FP8 weights of `names`
  // stacked into one, counted and uploaded likewise.
  bool converted_to_fp8(const std::string& name) const;
  Tensor upload_fp8(const std::vector<std::string>& names);

  const Checkpoint& checkpoint_;
  Backend* backend_;
  DType compute_;
  QuantizationConfig quantization_;
  size_t bytes_ = 0;
  std::function<void(size_t)> progress_;
  size_t read_bytes_ = 0;
  bool in_group_ = false;
  size_t group_bytes_ = 0, streamed_bytes_ = 0, largest_group_ = 0;
};

}  // namespace qwenvl
