#pragma once
// Argument checks of Backend::rope_qkv shared by the backends, so both refuse the same calls.
#include "backend/backend.h"

namespace qwenvl {

struct RopeQkvShape {
  int64_t tokens = 0;
  int heads_q = 0, heads_kv = 0, head_dim = 0;
  int64_t kv_rows = 0;  // rows of k and v (the cache capacity when slots are given)
};

// Error naming `op` and the argument when shapes, dtypes of the index tensors or the spec do not
// fit together. Does not look at slot values (they may live on a device).
RopeQkvShape check_rope_qkv(const Tensor& qkv, const Tensor& positions, const RopeSpec& spec,
                            const Tensor& slots, const Tensor& q, const Tensor& k, const Tensor& v,
                            const char* op);

}  // namespace qwenvl
