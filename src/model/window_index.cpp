#include "model/window_index.h"

#include "core/error.h"

namespace qwenvl {

WindowIndex window_index(const std::vector<VisionGrid>& grids, const VisionGeometry& geometry) {
  const int64_t side = geometry.units_per_window_side();
  const int64_t merge = geometry.merge_size;
  const int64_t units_per_merge = merge * merge;
  QWENVL_CHECK(side > 0, "window of ", geometry.window_size, " px");
  WindowIndex out;
  out.cu_window_seqlens.push_back(0);
  int64_t unit_base = 0;
  for (const VisionGrid& g : grids) {
    const int64_t uh = g.h / merge, uw = g.w / merge;
    // transformers pads by `side - n % side`: a full window of padding when n is a multiple.
    const int64_t windows_h = (uh + side - uh % side) / side;
    const int64_t windows_w = (uw + side - uw % side) / side;
    for (int64_t f = 0; f < g.t; ++f) {
      for (int64_t wy = 0; wy < windows_h; ++wy) {
        for (int64_t wx = 0; wx < windows_w; ++wx) {
          int64_t count = 0;
          for (int64_t y = wy * side; y < (wy + 1) * side && y < uh; ++y) {
            for (int64_t x = wx * side; x < (wx + 1) * side && x < uw; ++x) {
              out.unit_order.push_back(int32_t(unit_base + (f * uh + y) * uw + x));
              ++count;
            }
          }
          int32_t end = out.cu_window_seqlens.back() + int32_t(count * units_per_merge);
          if (end != out.cu_window_seqlens.back()) out.cu_window_seqlens.push_back(end);
        }
      }
    }
    unit_base += g.t * uh * uw;
  }
  return out;
}

std::vector<int32_t> frame_cu_seqlens(const std::vector<VisionGrid>& grids) {
  std::vector<int32_t> cu{0};
  for (const VisionGrid& g : grids)
    for (int64_t f = 0; f < g.t; ++f) cu.push_back(cu.back() + int32_t(g.h * g.w));
  return cu;
}

std::vector<int32_t> vision_patch_positions(const std::vector<VisionGrid>& grids, int merge_size) {
  int64_t total = 0;
  for (const VisionGrid& g : grids) total += g.patches();
  std::vector<int32_t> pos(size_t(2 * total));
  int32_t* rows = pos.data();
  int32_t* cols = pos.data() + total;
  int64_t i = 0;
  const int64_t m = merge_size;
  for (const VisionGrid& g : grids) {
    for (int64_t f = 0; f < g.t; ++f)
      for (int64_t by = 0; by < g.h / m; ++by)
        for (int64_t bx = 0; bx < g.w / m; ++bx)
          for (int64_t dy = 0; dy < m; ++dy)
            for (int64_t dx = 0; dx < m; ++dx, ++i) {
              rows[i] = int32_t(by * m + dy);
              cols[i] = int32_t(bx * m + dx);
            }
  }
  return pos;
}

std::vector<int32_t> units_to_patches(const std::vector<int32_t>& unit_order, int merge_size) {
  const int32_t per_unit = merge_size * merge_size;
  std::vector<int32_t> rows;
  rows.reserve(unit_order.size() * size_t(per_unit));
  for (int32_t u : unit_order)
    for (int32_t k = 0; k < per_unit; ++k) rows.push_back(u * per_unit + k);
  return rows;
}

std::vector<int32_t> inverse_permutation(const std::vector<int32_t>& order) {
  std::vector<int32_t> inverse(order.size(), -1);
  for (size_t i = 0; i < order.size(); ++i) {
    QWENVL_CHECK(order[i] >= 0 && size_t(order[i]) < order.size() && inverse[size_t(order[i])] < 0,
                 "not a permutation at ", i);
    inverse[size_t(order[i])] = int32_t(i);
  }
  return inverse;
}

}  // namespace qwenvl
