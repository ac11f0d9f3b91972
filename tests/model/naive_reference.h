#pragma once
// A second, deliberately literal implementation of Qwen2.5-VL in plain float loops on the host,
// transcribing transformers' modeling_qwen2_5_vl.py step by step (padded window index with -100,
// cos/sin tables with rotate_half, repeat_kv, masks as loops). Slow and only for tiny checkpoints:
// it checks that the real model uses the backend ops with the right layouts.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"

namespace qwenvl::test {

using Mat = std::vector<float>;  // row-major

class NaiveQwen {
 public:
  NaiveQwen(const ModelConfig& config, const Checkpoint& checkpoint)
      : c_(config), ck_(checkpoint) {}

  const float* w(const std::string& name) const { return ck_.get(name).data<float>(); }

  // y[n, m] = x[n, k] · W[m, k]ᵀ + b
  static Mat linear(const Mat& x, int64_t n, int64_t k, const float* W, int64_t m, const float* b) {
    Mat y(size_t(n * m));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) {
        double s = b ? b[j] : 0.0;
        for (int64_t t = 0; t < k; ++t) s += double(x[size_t(i * k + t)]) * W[j * k + t];
        y[size_t(i * m + j)] = float(s);
      }
    return y;
  }

  static Mat rms_norm(const Mat& x, int64_t n, int64_t d, const float* g, float eps) {
    Mat y(x.size());
    for (int64_t i = 0; i < n; ++i) {
      double ss = 0;
      for (int64_t j = 0; j < d; ++j) ss += double(x[size_t(i * d + j)]) * x[size_t(i * d + j)];
      float r = float(1.0 / std::sqrt(ss / double(d) + eps));
      for (int64_t j = 0; j < d; ++j) y[size_t(i * d + j)] = g[j] * (x[size_t(i * d + j)] * r);
    }
    return y;
  }

  // q[n, heads, hd] rotated with per-token cos/sin tables [n, hd] (rotate_half layout).
  static void apply_rotary(Mat& x, int64_t n, int64_t heads, int64_t hd, const Mat& cos,
                           const Mat& sin) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < heads; ++h) {
        float* v = &x[size_t((i * heads + h) * hd)];
        std::vector<float> rot(static_cast<size_t>(hd));
        for (int64_t d = 0; d < hd; ++d)
          rot[size_t(d)] = d < hd / 2 ? -v[d + hd / 2] : v[d - hd / 2];
        for (int64_t d = 0; d < hd; ++d)
          v[d] = v[d] * cos[size_t(i * hd + d)] + rot[size_t(d)] * sin[size_t(i * hd + d)];
      }
  }

  // softmax(q kᵀ · scale + mask) v, queries [nq, hq, hd], keys [nk, hkv, hd]; allowed(i, j).
  template <typename Allowed>
  static Mat attention(const Mat& q, const Mat& k, const Mat& v, int64_t nq, int64_t nk, int64_t hq,
                       int64_t hkv, int64_t hd, Allowed allowed) {
    Mat out(size_t(nq * hq * hd), 0.0f);
    const double scale = 1.0 / std::sqrt(double(hd));
    for (int64_t h = 0; h < hq; ++h) {
      const int64_t kh = h / (hq / hkv);  // repeat_kv
      for (int64_t i = 0; i < nq; ++i) {
        std::vector<double> s(size_t(nk), -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < nk; ++j) {
          if (!allowed(i, j)) continue;
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d)
            dot += double(q[size_t((i * hq + h) * hd + d)]) * k[size_t((j * hkv + kh) * hd + d)];
          s[size_t(j)] = dot * scale;
          mx = std::max(mx, s[size_t(j)]);
        }
        double total = 0;
        for (auto& e : s) total += (e = std::isinf(e) ? 0.0 : std::exp(e - mx));
        for (int64_t j = 0; j < nk; ++j)
          for (int64_t d = 0; d < hd; ++d)
            out[size_t((i * hq + h) * hd + d)] +=
                float(s[size_t(j)] / total * v[size_t((j * hkv + kh) * hd + d)]);
      }
    }
    return out;
  }

  // Qwen2_5_VisionTransformerPretrainedModel.forward for one image: [patches/4, out_hidden].
  Mat vision(const Mat& pixels, int64_t gt, int64_t gh, int64_t gw) const {
    const auto& v = c_.vision;
    const int64_t P = gt * gh * gw, H = v.hidden_size, heads = v.num_heads, hd = H / heads;
    const int64_t m = v.spatial_merge_size, unit = m * m;
    Mat x = linear(pixels, P, 1176, w("visual.patch_embed.proj.weight"), H, nullptr);

    // rot_pos_emb: hpos/wpos via reshape(h/m, m, w/m, m).permute(0, 2, 1, 3)
    std::vector<int64_t> hpos, wpos;
    for (int64_t f = 0; f < gt; ++f)
      for (int64_t a = 0; a < gh / m; ++a)
        for (int64_t c = 0; c < gw / m; ++c)
          for (int64_t b = 0; b < m; ++b)
            for (int64_t d = 0; d < m; ++d) {
              hpos.push_back(a * m + b);
              wpos.push_back(c * m + d);
            }
    const int64_t dim = hd / 2;  // VisionRotaryEmbedding(head_dim / 2)
    std::vector<float> inv;
    for (int64_t i = 0; i < dim; i += 2)
      inv.push_back(1.0f / std::pow(10000.0f, float(i) / float(dim)));
    Mat rot(size_t(P * dim));  // [P, dim] = cat(h freqs, w freqs)
    for (int64_t p = 0; p < P; ++p)
      for (size_t j = 0; j < inv.size(); ++j) {
        rot[size_t(p * dim) + j] = float(hpos[size_t(p)]) * inv[j];
        rot[size_t(p * dim) + inv.size() + j] = float(wpos[size_t(p)]) * inv[j];
      }

    // get_window_index with the -100 padding
    const int64_t S = v.window_size / m / v.patch_size;
    const int64_t uh = gh / m, uw = gw / m;
    const int64_t ph = S - uh % S, pw = S - uw % S;
    const int64_t nwh = (uh + ph) / S, nww = (uw + pw) / S;
    std::vector<int64_t> window_index;
    std::vector<int32_t> cu{0};
    for (int64_t f = 0; f < gt; ++f)
      for (int64_t a = 0; a < nwh; ++a)
        for (int64_t b = 0; b < nww; ++b) {
          int64_t count = 0;
          for (int64_t y = 0; y < S; ++y)
            for (int64_t xx = 0; xx < S; ++xx) {
              int64_t row = a * S + y, col = b * S + xx;
              int64_t value = (row < uh && col < uw) ? (f * uh + row) * uw + col : -100;
              if (value != -100) {
                window_index.push_back(value);
                ++count;
              }
            }
          cu.push_back(cu.back() + int32_t(count * unit));
        }
    cu.erase(std::unique(cu.begin(), cu.end()), cu.end());  // unique_consecutive
    std::vector<int32_t> frames{0};
    for (int64_t f = 0; f < gt; ++f) frames.push_back(frames.back() + int32_t(gh * gw));

    auto reorder = [&](const Mat& src, int64_t width) {
      Mat out(src.size());
      for (size_t i = 0; i < window_index.size(); ++i)
        std::copy_n(&src[size_t(window_index[i] * unit * width)], unit * width,
                    &out[i * size_t(unit * width)]);
      return out;
    };
    x = reorder(x, H);
    rot = reorder(rot, dim);
    Mat cos(size_t(P * hd)), sin(size_t(P * hd));
    for (int64_t p = 0; p < P; ++p)
      for (int64_t d = 0; d < hd; ++d) {
        float e = rot[size_t(p * dim + d % dim)];  // cat(rot, rot)
        cos[size_t(p * hd + d)] = std::cos(e);
        sin[size_t(p * hd + d)] = std::sin(e);
      }

    for (int b = 0; b < v.depth; ++b) {
      const std::string p = "visual.blocks." + std::to_string(b) + ".";
      const bool full = std::find(v.fullatt_block_indexes.begin(), v.fullatt_block_indexes.end(),
                                  b) != v.fullatt_block_indexes.end();
      const std::vector<int32_t>& bounds = full ? frames : cu;
      std::vector<int32_t> segment(static_cast<size_t>(P));
      for (size_t s = 0; s + 1 < bounds.size(); ++s)
        for (int32_t i = bounds[s]; i < bounds[s + 1]; ++i) segment[size_t(i)] = int32_t(s);
      Mat n1 = rms_norm(x, P, H, w(p + "norm1.weight"), 1e-6f);
      Mat qkv = linear(n1, P, H, w(p + "attn.qkv.weight"), 3 * H, w(p + "attn.qkv.bias"));
      Mat q(size_t(P * H)), k(size_t(P * H)), vv(size_t(P * H));
      for (int64_t i = 0; i < P; ++i)
        for (int64_t j = 0; j < H; ++j) {
          q[size_t(i * H + j)] = qkv[size_t(i * 3 * H + j)];
          k[size_t(i * H + j)] = qkv[size_t(i * 3 * H + H + j)];
          vv[size_t(i * H + j)] = qkv[size_t(i * 3 * H + 2 * H + j)];
        }
      apply_rotary(q, P, heads, hd, cos, sin);
      apply_rotary(k, P, heads, hd, cos, sin);
      Mat att = attention(q, k, vv, P, P, heads, heads, hd, [&](int64_t i, int64_t j) {
        return segment[size_t(i)] == segment[size_t(j)];
      });
      Mat proj = linear(att, P, H, w(p + "attn.proj.weight"), H, w(p + "attn.proj.bias"));
      for (size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
      Mat n2 = rms_norm(x, P, H, w(p + "norm2.weight"), 1e-6f);
      const int64_t I = v.intermediate_size;
      Mat g = linear(n2, P, H, w(p + "mlp.gate_proj.weight"), I, w(p + "mlp.gate_proj.bias"));
      Mat u = linear(n2, P, H, w(p + "mlp.up_proj.weight"), I, w(p + "mlp.up_proj.bias"));
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
      Mat down = linear(g, P, I, w(p + "mlp.down_proj.weight"), H, w(p + "mlp.down_proj.bias"));
      for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
    }
    Mat ln = rms_norm(x, P, H, w("visual.merger.ln_q.weight"), 1e-6f);
    Mat h1 = linear(ln, P / unit, H * unit, w("visual.merger.mlp.0.weight"), H * unit,
                    w("visual.merger.mlp.0.bias"));
    for (auto& e : h1) e = 0.5f * e * (1.0f + std::erf(e / std::sqrt(2.0f)));
    const int64_t O = v.out_hidden_size;
    Mat merged = linear(h1, P / unit, H * unit, w("visual.merger.mlp.2.weight"), O,
                        w("visual.merger.mlp.2.bias"));
    Mat out(merged.size());  // hidden_states[argsort(window_index)]
    for (size_t i = 0; i < window_index.size(); ++i)
      std::copy_n(&merged[i * size_t(O)], O, &out[size_t(window_index[i] * O)]);
    return out;
  }

  // Qwen2_5_VLTextModel + lm_head over the whole sequence; logits of the last position.
  // positions: [3][n]; image_embeds replace image pads in order.
  std::vector<float> text_logits(const std::vector<int32_t>& ids, const std::vector<int64_t>& pos,
                                 const Mat& image_embeds) const {
    const auto& t = c_.text;
    const int64_t n = int64_t(ids.size()), D = t.hidden_size, hq = t.num_attention_heads,
                  hkv = t.num_key_value_heads, hd = t.head_dim;
    Mat x(size_t(n * D));
    const float* embed = w("model.embed_tokens.weight");
    int64_t next_image = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* src = ids[size_t(i)] == c_.image_token_id
                             ? &image_embeds[size_t(next_image++ * D)]
                             : embed + int64_t(ids[size_t(i)]) * D;
      std::copy_n(src, D, &x[size_t(i * D)]);
    }
    // Qwen2_5_VLRotaryEmbedding + apply_multimodal_rotary_pos_emb(mrope_section * 2)
    std::vector<float> inv;
    for (int64_t i = 0; i < hd; i += 2)
      inv.push_back(1.0f / std::pow(t.rope_theta, float(i) / float(hd)));
    std::vector<int> section_of_dim;
    for (int rep = 0; rep < 2; ++rep)
      for (int s = 0; s < 3; ++s)
        for (int k = 0; k < t.mrope_section[size_t(s)]; ++k) section_of_dim.push_back(s);
    Mat cos(size_t(n * hd)), sin(size_t(n * hd));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t d = 0; d < hd; ++d) {
        const int row = section_of_dim[size_t(d)];
        const float angle = float(pos[size_t(row * n + i)]) * inv[size_t(d % (hd / 2))];
        cos[size_t(i * hd + d)] = std::cos(angle);
        sin[size_t(i * hd + d)] = std::sin(angle);
      }
    for (int l = 0; l < t.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      Mat h = rms_norm(x, n, D, w(p + "input_layernorm.weight"), t.rms_norm_eps);
      Mat q = linear(h, n, D, w(p + "self_attn.q_proj.weight"), hq * hd,
                     w(p + "self_attn.q_proj.bias"));
      Mat k = linear(h, n, D, w(p + "self_attn.k_proj.weight"), hkv * hd,
                     w(p + "self_attn.k_proj.bias"));
      Mat v = linear(h, n, D, w(p + "self_attn.v_proj.weight"), hkv * hd,
                     w(p + "self_attn.v_proj.bias"));
      apply_rotary(q, n, hq, hd, cos, sin);
      apply_rotary(k, n, hkv, hd, cos, sin);
      Mat att = attention(q, k, v, n, n, hq, hkv, hd, [](int64_t i, int64_t j) { return j <= i; });
      Mat o = linear(att, n, hq * hd, w(p + "self_attn.o_proj.weight"), D, nullptr);
      for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
      Mat h2 = rms_norm(x, n, D, w(p + "post_attention_layernorm.weight"), t.rms_norm_eps);
      const int64_t F = t.intermediate_size;
      Mat g = linear(h2, n, D, w(p + "mlp.gate_proj.weight"), F, nullptr);
      Mat u = linear(h2, n, D, w(p + "mlp.up_proj.weight"), F, nullptr);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
      Mat down = linear(g, n, F, w(p + "mlp.down_proj.weight"), D, nullptr);
      for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
    }
    Mat last(x.end() - D, x.end());
    Mat normed = rms_norm(last, 1, D, w("model.norm.weight"), t.rms_norm_eps);
    const float* head = t.tie_word_embeddings ? embed : w("lm_head.weight");
    return linear(normed, 1, D, head, t.vocab_size, nullptr);
  }

 private:
  const ModelConfig& c_;
  const Checkpoint& ck_;
};

}  // namespace qwenvl::test
