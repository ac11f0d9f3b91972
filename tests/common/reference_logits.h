#pragma once
// transformers' last-position logits of a tiny-model reference case (docs/FIXTURES.md), whole:
// the fixture keeps the final hidden state that transformers' lm_head multiplied (a few dozen
// floats instead of the vocabulary's 151,680), and the logits are that product rebuilt here in
// double from the stored lm_head tensor the case names. tools/reference/model_cases.py checks
// the rebuild against transformers' fp32 logits to 1e-6 (relative L2), and each case keeps
// transformers' own top logits, checked here against the rebuild.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"
#include "common/npy.h"
#include "common/tensor_values.h"
#include "core/half.h"

namespace qwenvl::test {

// `entry` is one element of models/<name>/reference/cases.json.
inline std::vector<double> reference_logits(const std::filesystem::path& model_dir,
                                            const nlohmann::json& entry) {
  const ModelConfig config = load_model_config(model_dir.string());
  const Checkpoint checkpoint = Checkpoint::open(model_dir.string(), config);
  const Tensor& w = checkpoint.get(entry["lm_head_tensor"].get<std::string>());
  const Npy hidden_npy =
      read_npy((model_dir / "reference" / entry["final_hidden_npy"].get<std::string>()).string());
  const std::vector<double> hidden = hidden_npy.as_double();
  if (w.shape().rank() != 2 || w.dim(1) != int64_t(hidden.size())) {
    ADD_FAILURE() << "lm_head tensor and final hidden state do not fit: " << hidden.size()
                  << " hidden values";
    return {};
  }
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<double> logits(size_t(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += get(w, r * cols + c) * hidden[size_t(c)];
    logits[size_t(r)] = sum;
  }
  for (const auto& top : entry["logits_top"]) {
    const int64_t id = top[0].get<int64_t>();
    const double want = top[1].get<double>();
    EXPECT_NEAR(logits.at(size_t(id)), want, 1e-5 * std::max(1.0, std::fabs(want)))
        << "rebuilt logit of token " << id << " differs from transformers'";
  }
  return logits;
}

}  // namespace qwenvl::test
