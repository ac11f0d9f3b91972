// sample: the next token from fp32 logits, as transformers' generate() picks it, processors in
// transformers' order:
//   1. RepetitionPenaltyLogitsProcessor: for each distinct id in history,
//      score = score < 0 ? score * penalty : score / penalty.
//   2. temperature == 0: greedy, argmax (torch.argmax: the lowest id among equal maxima). Done.
//   3. TemperatureLogitsWarper: score / temperature.
//   4. TopKLogitsWarper: drop scores below the k-th largest (ties with it are kept).
//   5. TopPLogitsWarper: sort ascending (stable: equal scores by increasing id), cumulative
//      softmax; drop tokens whose cumulative probability is <= 1 - top_p, keeping the largest.
//   6. MinPLogitsWarper: drop tokens whose probability < min_p · the largest probability.
//   7. Softmax over what is left, then the caller's uniform draw u picks: walking tokens in
//      descending probability (equal probabilities: lower id first), the first whose cumulative
//      probability exceeds u · total. (torch.multinomial draws differently; this rule makes every
//      backend pick the same token from the same u.)
// Probabilities use an fp32 exp and a double sum, cumulative sums are double (as torch's CPU
// cumsum accumulates float in double).
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_checks.h"

namespace qwenvl {

namespace {

using Candidate = std::pair<float, int32_t>;  // (score, token id)

bool ascending(const Candidate& a, const Candidate& b) {
  return a.first < b.first || (a.first == b.first && a.second < b.second);
}

// Probabilities of sorted ascending candidates (the last has the largest score), in place of
// their scores' exp; returns the double total.
double softmax_weights(const std::vector<Candidate>& c, std::vector<double>* weights) {
  weights->resize(c.size());
  const float max = c.back().first;
  double total = 0;
  for (size_t i = 0; i < c.size(); ++i) total += (*weights)[i] = double(std::exp(c[i].first - max));
  return total;
}

// Each of `ids` (distinct) penalized once.
void penalize_distinct(float* logits, int64_t vocab, const int32_t* ids, int64_t n, float penalty) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab)
      fail_internal("sample: history token id ", id, " is outside the vocabulary of ", vocab);
    float& s = logits[id];
    s = s < 0 ? s * penalty : s / penalty;
  }
}

void apply_repetition_penalty(float* logits, int64_t vocab, const Tensor& history, float penalty,
                              std::vector<int32_t>& ids) {
  const int32_t* h = history.data<int32_t>();
  ids.assign(h, h + history.numel());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  penalize_distinct(logits, vocab, ids.data(), int64_t(ids.size()), penalty);
}

int32_t argmax(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return int32_t(best);
}

void check_params(const SamplingParams& p) {
  if (!(p.temperature >= 0)) fail("sampling temperature must be >= 0, got ", p.temperature);
  if (p.top_k < 0) fail("sampling top_k must be >= 0, got ", p.top_k);
  if (!(p.top_p >= 0 && p.top_p <= 1)) fail("sampling top_p must be in [0, 1], got ", p.top_p);
  if (!(p.min_p >= 0 && p.min_p <= 1)) fail("sampling min_p must be in [0, 1], got ", p.min_p);
  if (!(p.repetition_penalty > 0))
    fail("sampling repetition_penalty must be > 0, got ", p.repetition_penalty);
}

}  // namespace

void CpuBackend::sample(Tensor& logits, const Tensor& history, const SamplingParams& params,
                        float uniform, Tensor& next_token) {
  check_cpu(logits, "sample", "logits");
  check_cpu(next_token, "sample", "next_token");
  check_dtype(logits, "sample", "logits", {DType::F32});
  check_dtype(next_token, "sample", "next_token", {DType::I32});
  if (next_token.numel() < 1) fail_internal("sample: next_token must hold one id");
  check_params(params);
  const int64_t vocab = logits.numel();
  if (vocab < 1) fail_internal("sample: the logits are empty");
  float* s = logits.data<float>();

  if (params.repetition_penalty != 1.0f && history.defined() && history.numel() > 0) {
    check_cpu(history, "sample", "history");
    check_dtype(history, "sample", "history", {DType::I32});
    apply_repetition_penalty(s, vocab, history, params.repetition_penalty, sample_history_);
  }
  int32_t& chosen = next_token.data<int32_t>()[0];
  if (params.temperature == 0.0f) {
    chosen = argmax(s, vocab);
    return;
  }

  // Candidates are the tokens still finite; -inf ones have probability 0 in every later step.
  std::vector<Candidate>& c = sample_candidates_;
  c.clear();
  for (int64_t i = 0; i < vocab; ++i) {
    const float scaled = s[i] / params.temperature;
    s[i] = scaled;
    if (scaled > -INFINITY) c.emplace_back(scaled, int32_t(i));
  }
  if (c.empty()) fail("sample: every logit is -inf or NaN; there is no token to sample");

  if (params.top_k > 0 && params.top_k < int64_t(c.size())) {
    auto kth = c.begin() + (params.top_k - 1);
    std::nth_element(c.begin(), kth, c.end(),
                     [](const Candidate& a, const Candidate& b) { return a.first > b.first; });
    const float threshold = kth->first;
    c.erase(std::remove_if(c.begin(), c.end(),
                           [threshold](const Candidate& x) { return x.first < threshold; }),
            c.end());
  }
  std::sort(c.begin(), c.end(), ascending);

  std::vector<double> w;
  if (params.top_p < 1.0f) {
    const double total = softmax_weights(c, &w);
    const float limit = float(1.0 - double(params.top_p));
    double cumulative = 0;
    size_t drop = 0;
    for (; drop + 1 < c.size(); ++drop) {
      cumulative += double(float(w[drop] / total));
      if (!(float(cumulative) <= limit)) break;
    }
    c.erase(c.begin(), c.begin() + drop);
  }
  if (params.min_p > 0.0f) {
    const double total = softmax_weights(c, &w);
    const float top = float(w.back() / total);
    const float threshold = params.min_p * top;
    size_t drop = 0;
    while (drop + 1 < c.size() && float(w[drop] / total) < threshold) ++drop;
    c.erase(c.begin(), c.begin() + drop);
  }

  // Descending probability, equal ones by lower id: reverse the ascending order, then put each
  // run of equal scores back in increasing id.
  std::reverse(c.begin(), c.end());
  for (size_t a = 0; a < c.size();) {
    size_t b = a + 1;
    while (b < c.size() && c[b].first == c[a].first) ++b;
    std::reverse(c.begin() + a, c.begin() + b);
    a = b;
  }
  w.resize(c.size());
  double total = 0;
  for (size_t i = 0; i < c.size(); ++i) total += w[i] = double(std::exp(c[i].first - c[0].first));
  const double target = double(uniform) * total;
  double cumulative = 0;
  chosen = c.back().second;  // if rounding leaves the target unreached: the least likely kept
  for (size_t i = 0; i < c.size(); ++i) {
    cumulative += w[i];
    if (cumulative > target) {
      chosen = c[i].second;
      break;
    }
  }
}

void CpuBackend::penalize_repeats(Tensor& logits, const Tensor& ids, const Tensor& offsets,
                                  const Tensor& penalties) {
  for (const Tensor* t : {static_cast<const Tensor*>(&logits), &ids, &offsets, &penalties})
    check_cpu(*t, "penalize_repeats", "an argument");
  check_dtype(logits, "penalize_repeats", "logits", {DType::F32});
  check_dtype(ids, "penalize_repeats", "ids", {DType::I32});
  check_dtype(offsets, "penalize_repeats", "offsets", {DType::I32});
  check_dtype(penalties, "penalize_repeats", "penalties", {DType::F32});
  const int64_t rows = logits.dim(0), vocab = logits.numel() / std::max<int64_t>(rows, 1);
  if (logits.rank() != 2 || offsets.numel() != rows + 1 || penalties.numel() != rows)
    fail_internal("penalize_repeats: ", rows, " rows of logits with ", offsets.numel(),
                  " offsets and ", penalties.numel(), " penalties");
  const int32_t* off = offsets.data<int32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    if (off[r] < 0 || off[r] > off[r + 1] || off[r + 1] > ids.numel())
      fail_internal("penalize_repeats: row ", r, "'s ids [", off[r], ", ", off[r + 1],
                    ") are outside the ", ids.numel(), " given");
    penalize_distinct(logits.data<float>() + r * vocab, vocab, ids.data<int32_t>() + off[r],
                      off[r + 1] - off[r], penalties.data<float>()[r]);
  }
}

void CpuBackend::argmax_rows(const Tensor& logits, Tensor& next_tokens) {
  check_cpu(logits, "argmax_rows", "logits");
  check_cpu(next_tokens, "argmax_rows", "next_tokens");
  check_dtype(logits, "argmax_rows", "logits", {DType::F32});
  check_dtype(next_tokens, "argmax_rows", "next_tokens", {DType::I32});
  if (logits.rank() != 2 || logits.dim(1) < 1 || next_tokens.numel() != logits.dim(0))
    fail_internal("argmax_rows: logits ", logits.shape().str(), " for ", next_tokens.numel(),
                  " tokens");
  const int64_t vocab = logits.dim(1);
  for (int64_t r = 0; r < logits.dim(0); ++r)
    next_tokens.data<int32_t>()[r] = argmax(logits.data<float>() + r * vocab, vocab);
}

}  // namespace qwenvl
