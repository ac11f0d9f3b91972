#pragma once
// Weights held in host memory and copied to the device for each use: the memory plan's "stream"
// placement, laid out the same way by every backend.
//
// Uploads between begin_group and end_group form one group (a decoder layer, a vision block),
// written to host memory in the layout the device computes from; the tensors they return address
// the group's slot, one of a few device buffers where the group's bytes are while it is in use.
// Groups belong to a sequence: groups used in the same order on every pass (the decoder's layers,
// the vision tower's blocks). Group k of a sequence lives in slot k % slots, so while one slot's
// group computes, the copy of the next group fills another slot.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace qwenvl {

class StreamedWeights {
 public:
  struct Group {
    int sequence = 0;
    int index = 0;  // within its sequence
    size_t host_offset = 0;
    size_t bytes = 0;
  };

  // host: host_bytes where the groups' bytes are kept; slots: slot_count buffers of slot_bytes
  // each, one after the other, on `device`.
  void init(char* host, size_t host_bytes, char* slots, size_t slot_bytes, int slot_count,
            Device device);
  bool ready() const { return slot_count_ > 0; }

  void begin_group(int sequence);
  // One parameter of the open group: the parts stacked along their first dimension (one part: a
  // plain parameter), in `dtype` (converted here, on the host, where the parts' dtype differs).
  Tensor add(const std::vector<Tensor>& parts, DType dtype);
  int end_group();  // the group's id

  int slots() const { return slot_count_; }
  size_t slot_bytes() const { return slot_bytes_; }
  size_t host_bytes() const { return host_bytes_; }
  const Group& group(int id) const;
  int groups() const { return int(groups_.size()); }
  // The id of group `index` of `sequence`, or -1 when there is none.
  int find(int sequence, int index) const;
  int slot_of(int id) const { return group(id).index % slot_count_; }
  const char* host_of(int id) const { return host_ + group(id).host_offset; }
  char* slot_memory(int slot) const { return slots_ + size_t(slot) * slot_bytes_; }

 private:
  char* host_ = nullptr;
  size_t host_bytes_ = 0, host_used_ = 0;
  char* slots_ = nullptr;
  size_t slot_bytes_ = 0;
  int slot_count_ = 0;
  Device device_ = Device::CPU;
  std::vector<Group> groups_;
  std::vector<std::vector<int>> sequence_ids_;  // per sequence, its groups' ids in order
  bool open_ = false;
  Group current_;
};

}  // namespace qwenvl
