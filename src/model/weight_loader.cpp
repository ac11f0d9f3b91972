#include "model/weight_loader.h"

#include <algorithm>
#include <cstring>

#include "backend/packed_fp8.h"
#include "backend/packed_int4.h"
#include "checkpoint/awq.h"
#include "core/error.h"

namespace qwenvl {

// Backends align every allocation to at most kAllocationAlignment bytes.
void WeightLoader::count(int64_t elements, DType dtype) {
  const size_t bytes = allocation_size(size_t(elements) * dtype_size(dtype));
  (in_group_ ? group_bytes_ : bytes_) += bytes;
}

void WeightLoader::begin_group(int sequence) {
  QWENVL_CHECK(!in_group_, "a weight group is open already");
  in_group_ = true;
  group_bytes_ = 0;
  if (backend_) backend_->begin_streamed_group(sequence);
}

int WeightLoader::end_group() {
  QWENVL_CHECK(in_group_, "no weight group is open");
  in_group_ = false;
  streamed_bytes_ += group_bytes_;
  largest_group_ = std::max(largest_group_, group_bytes_);
  return backend_ ? backend_->end_streamed_group() : -1;
}

Tensor WeightLoader::upload(const Tensor& host) {
  const DType dtype = in_place() ? host.dtype() : compute_;
  // A streamed weight is copied to the device for each use, so even an f32 backend copies it
  // into the group's host memory.
  if (in_group_) return upload_stacked({host}, dtype);
  if (!in_place()) count(host.numel(), dtype);
  if (!backend_) return host;
  Tensor out = backend_->upload_weight(host, dtype);
  report(host.nbytes());
  return out;
}

void WeightLoader::report(size_t bytes) {
  read_bytes_ += bytes;
  if (progress_) progress_(read_bytes_);
}

Tensor WeightLoader::upload_stacked(const std::vector<Tensor>& parts, DType dtype,
                                    size_t read_bytes) {
  int64_t elements = 0;
  for (const Tensor& part : parts) elements += part.numel();
  count(elements, dtype);
  if (!backend_) return Tensor();
  Tensor out = in_group_ ? backend_->upload_streamed(parts, dtype)
                         : backend_->upload_weight_stacked(parts, dtype);
  size_t read = read_bytes;
  if (read == 0)
    for (const Tensor& part : parts) read += part.nbytes();
  report(read);
  return out;
}

namespace {

// "X.weight" -> "X", the module AWQ's tensors are named after.
std::string module_of(const std::string& weight_name) {
  const std::string suffix = ".weight";
  if (weight_name.size() <= suffix.size() ||
      weight_name.compare(weight_name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return weight_name;
  return weight_name.substr(0, weight_name.size() - suffix.size());
}

}  // namespace

bool WeightLoader::quantized(const std::string& name) const {
  return module_of(name) != name && checkpoint_.has(module_of(name) + ".qweight");
}

// The checkpoint was validated against expected_tensors: qweight [K, N/8], qzeros [K/G, N/8].
// A padded MLP (Checkpoint::stored_mlp_width) loads without its padding: gate/up's extra output
// rows and down's extra input columns (zeros: silu(0) · 0 adds nothing) are dropped.
Int4Layout WeightLoader::quantized_layout(const std::string& name) const {
  const std::string module = module_of(name);
  const Tensor& qweight = checkpoint_.get(module + ".qweight");
  const Tensor& qzeros = checkpoint_.get(module + ".qzeros");
  int64_t rows = qweight.dim(1) * 8, k = qweight.dim(0);
  const int64_t group = k / qzeros.dim(0);
  const auto ends_with = [&](const char* suffix) {
    const std::string s = suffix;
    return module.size() > s.size() && module.compare(module.size() - s.size(), s.size(), s) == 0;
  };
  const int64_t stored = checkpoint_.stored_mlp_width(), f = checkpoint_.mlp_width();
  if ((ends_with(".mlp.gate_proj") || ends_with(".mlp.up_proj")) && rows == stored) rows = f;
  if (ends_with(".mlp.down_proj") && k == stored) k = f;
  return Int4Layout::make(rows, k, group, module.c_str());
}

Shape WeightLoader::quantized_shape(const std::string& name) const {
  return quantized_layout(name).shape();
}

Tensor WeightLoader::packed(const std::string& name) const {
  const std::string module = module_of(name);
  const Tensor& qweight = checkpoint_.get(module + ".qweight");
  const Tensor& qzeros = checkpoint_.get(module + ".qzeros");
  const Int4Layout layout = quantized_layout(name);
  Int4Values values =
      unpack_awq({qweight, qzeros, checkpoint_.get(module + ".scales")}, layout.group, module);
  if (values.rows != layout.rows || values.k != layout.k)
    values = leading_block(values, layout.rows, layout.k);
  // The CPU computes from the packed copy: keep resident memory at one copy, as stacked() does.
  if (in_place())
    for (const char* part : {".qweight", ".qzeros", ".scales"})
      checkpoint_.release_pages(checkpoint_.get(module + part));
  return pack_int4(values.q.data(), values.zeros.data(), values.scales.data(), layout);
}

Tensor WeightLoader::get(const std::string& name) {
  if (quantized(name)) return upload_quantized({name});
  if (converted_to_fp8(name)) return upload_fp8({name});
  return upload(checkpoint_.get(name));
}

Tensor WeightLoader::reshaped(const std::string& name, Shape shape) {
  return upload(checkpoint_.get(name).view(shape));
}

namespace {

// `part` with its rows moved to ResidueFirst{rows}'s positions, zero rows in the gap, in its own
// dtype.
Tensor with_residue_first_rows(const Tensor& part) {
  const ResidueFirst layout{part.dim(0)};
  Shape shape = part.shape();
  shape[0] = layout.width();
  Tensor out = Tensor::empty(shape, part.dtype());
  const size_t row_bytes = size_t(part.numel() / part.dim(0)) * dtype_size(part.dtype());
  std::memset(out.data(), 0, size_t(out.numel()) * dtype_size(part.dtype()));
  for (int64_t r = 0; r < part.dim(0); ++r)
    std::memcpy(static_cast<char*>(out.data()) + size_t(layout.position(r)) * row_bytes,
                static_cast<const char*>(part.data()) + size_t(r) * row_bytes, row_bytes);
  return out;
}

}  // namespace

Tensor WeightLoader::stacked(const std::vector<std::string>& names, bool residue_first) {
  if (quantized(names.front())) return upload_quantized(names);
  if (converted_to_fp8(names.front())) return upload_fp8(names);
  std::vector<Tensor> parts;
  bool one_dtype = true, padded = false;
  for (const std::string& name : names) {
    Tensor part = checkpoint_.get(name);
    if (residue_first && ResidueFirst{part.dim(0)}.width() != part.dim(0)) {
      part = with_residue_first_rows(part);
      padded = true;
    }
    parts.push_back(part);
    one_dtype = one_dtype && parts.back().dtype() == parts.front().dtype();
  }
  // Stacking copies on every backend; an in-place (f32) backend keeps the checkpoint's dtype.
  const DType dtype = !in_place() ? compute_ : one_dtype ? parts.front().dtype() : DType::F32;
  Tensor out = upload_stacked(parts, dtype);
  if (!backend_) return out;
  // The CPU's copy replaces the mapped pages it was read from: keep resident memory at one copy.
  if (in_place() && !padded)
    for (const Tensor& part : parts) checkpoint_.release_pages(part);
  return out;
}

Tensor WeightLoader::upload_quantized(const std::vector<std::string>& names) {
  int64_t bytes = 0;
  for (const std::string& name : names) {
    if (!quantized(name))
      fail(module_of(names.front()), " is stored quantized but ", module_of(name),
           " is not; qwenvl multiplies them as one weight, so both must be (or neither)");
    bytes += quantized_shape(name).numel();
  }
  // A planning pass counts the packed size without packing.
  if (!backend_) {
    count(bytes, DType::Q4);
    return Tensor();
  }
  // A packed weight is a new host copy on every backend: stacked (and counted) as such.
  std::vector<Tensor> parts;
  for (const std::string& name : names) parts.push_back(packed(name));
  return upload_stacked(parts, DType::Q4);
}

bool WeightLoader::converted_to_fp8(const std::string& name) const {
  return module_of(name) != name && quantization_.converts_to_fp8(module_of(name));
}

Tensor WeightLoader::upload_fp8(const std::vector<std::string>& names) {
  int64_t bytes = 0;
  for (const std::string& name : names) {
    if (!converted_to_fp8(name))
      fail_internal(name, " is stacked with FP8 weights but is not converted to FP8 itself");
    const Tensor& w = checkpoint_.get(name);
    bytes += Fp8Layout::make(w.dim(0), w.dim(1), name.c_str()).shape().numel();
  }
  if (!backend_) {
    count(bytes, DType::F8E4M3);
    return Tensor();
  }
  // Each part is quantized from its mapped bytes into a new host copy, stacked (and counted) as
  // such; the CPU computes from that copy, so the mapped pages are dropped.
  std::vector<Tensor> parts;
  size_t read = 0;
  for (const std::string& name : names) {
    const Tensor& w = checkpoint_.get(name);
    parts.push_back(quantize_fp8(w, name.c_str()));
    read += w.nbytes();
    if (in_place()) checkpoint_.release_pages(w);
  }
  return upload_stacked(parts, DType::F8E4M3, read);
}

Tensor WeightLoader::residue_first_columns(const std::string& name) {
  const Tensor& w = checkpoint_.get(name);
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const ResidueFirst layout{cols};
  if (layout.width() == cols) return get(name);
  Tensor out = Tensor::empty({rows, layout.width()}, w.dtype());
  const size_t element = dtype_size(w.dtype());
  std::memset(out.data(), 0, size_t(out.numel()) * element);
  // Two runs per row: the residue's columns, then the rest after the gap.
  const int64_t residue = layout.residue();
  for (int64_t r = 0; r < rows; ++r) {
    char* dst = static_cast<char*>(out.data()) + size_t(r * layout.width()) * element;
    const char* src = static_cast<const char*>(w.data()) + size_t(r * cols) * element;
    std::memcpy(dst, src, size_t(residue) * element);
    std::memcpy(dst + size_t(layout.position(residue)) * element, src + size_t(residue) * element,
                size_t(cols - residue) * element);
  }
  if (!in_place()) return upload(out);
  // The CPU computes from this host copy itself: count it, as a stacked weight is counted.
  return upload_stacked({out}, out.dtype());
}

}  // namespace qwenvl
