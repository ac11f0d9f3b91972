#include "model/rope_index.h"

#include <algorithm>

#include "core/error.h"

namespace qwenvl {

namespace {

struct Builder {
  std::vector<int64_t> t, h, w;
  int64_t next = 0;  // largest position so far + 1

  void text(int64_t count) {
    for (int64_t i = 0; i < count; ++i) push(next, next, next);
  }
  void push(int64_t pt, int64_t ph, int64_t pw) {
    t.push_back(pt);
    h.push_back(ph);
    w.push_back(pw);
  }
};

}  // namespace

MropePositions rope_index(const std::vector<int32_t>& ids, const RopeIndexInputs& in) {
  const int64_t n = int64_t(ids.size());
  Builder b;
  size_t next_image = 0, next_video = 0;
  int64_t i = 0;
  while (i < n) {
    const int32_t id = ids[size_t(i)];
    const bool is_image = id == in.tokens.image, is_video = id == in.tokens.video;
    if (!is_image && !is_video) {
      b.text(1);
      b.next = b.t.back() + 1;
      ++i;
      continue;
    }
    const auto& grids = is_image ? in.image_grids : in.video_grids;
    size_t& index = is_image ? next_image : next_video;
    if (index >= grids.size())
      fail("the prompt has more ", is_image ? "image" : "video", " blocks than ",
           is_image ? "images" : "videos", " were given (", grids.size(), ")");
    const VisionGrid& g = grids[index];
    // Images have no time axis to scale; videos space their frames by
    // seconds_per_grid · tokens_per_second, truncated to an integer per frame.
    float seconds = 0.0f;
    if (is_video)
      seconds = index < in.seconds_per_video_grid.size() ? in.seconds_per_video_grid[index] : 1.0f;
    ++index;
    const int64_t gt = g.t, gh = g.h / in.merge_size, gw = g.w / in.merge_size;
    const int64_t count = gt * gh * gw;
    for (int64_t k = 0; k < count; ++k)
      if (i + k >= n || ids[size_t(i + k)] != id)
        fail("the prompt's ", is_image ? "image" : "video", " block ", index,
             " has fewer pad tokens", " than its grid needs (", count, ")");
    const int64_t start = b.next;
    for (int64_t ft = 0; ft < gt; ++ft) {
      int64_t time = is_video ? int64_t(float(ft) * seconds * float(in.tokens_per_second)) : ft;
      for (int64_t y = 0; y < gh; ++y)
        for (int64_t x = 0; x < gw; ++x) b.push(start + time, start + y, start + x);
    }
    int64_t max_pos = start;
    for (int64_t k = int64_t(b.t.size()) - count; k < int64_t(b.t.size()); ++k)
      max_pos = std::max({max_pos, b.t[size_t(k)], b.h[size_t(k)], b.w[size_t(k)]});
    b.next = max_pos + 1;
    i += count;
  }
  if (next_image != in.image_grids.size() || next_video != in.video_grids.size())
    fail("the prompt has ", next_image, " image and ", next_video, " video blocks but ",
         in.image_grids.size(), " images and ", in.video_grids.size(), " videos were given");
  MropePositions out;
  out.length = n;
  out.rows.reserve(size_t(3 * n));
  for (const auto* row : {&b.t, &b.h, &b.w})
    out.rows.insert(out.rows.end(), row->begin(), row->end());
  out.rope_delta = b.next - n;
  return out;
}

}  // namespace qwenvl
