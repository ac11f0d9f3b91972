#pragma once
// The ranges a request's generation settings must lie in, one table for every place they come
// from (the CLI's flags, generation_config.json, the server's request fields), and the one
// normalisation applied before sampling: a temperature so small that logits / T would overflow
// float behaves as its limit, greedy decoding (the threshold vLLM uses too).
#include <cstdint>
#include <limits>

#include "backend/backend.h"

namespace qwenvl {

struct SettingRange {
  double min, max;
  bool holds(double v) const { return v >= min && v <= max; }  // false for NaN
};

inline constexpr SettingRange kTemperatureRange{0.0, 1000.0};
inline constexpr SettingRange kTopKRange{0.0, double(std::numeric_limits<int32_t>::max())};
inline constexpr SettingRange kTopPRange{1e-9, 1.0};  // (0, 1]
inline constexpr SettingRange kMinPRange{0.0, 1.0};
inline constexpr SettingRange kRepetitionPenaltyRange{0.01, 100.0};
inline constexpr SettingRange kPresencePenaltyRange{-2.0, 2.0};  // OpenAI's bounds
inline constexpr SettingRange kFrequencyPenaltyRange{-2.0, 2.0};
inline constexpr int64_t kMaxNewTokensLimit = int64_t(1) << 24;

// Temperatures below this sample as temperature 0 (greedy): the limit of softmax(logits / T).
inline constexpr float kGreedyTemperature = 1e-5f;

// `p` with kGreedyTemperature applied.
inline SamplingParams effective_sampling(SamplingParams p) {
  if (p.temperature < kGreedyTemperature) p.temperature = 0.0f;
  return p;
}

}  // namespace qwenvl
