// The generator's host path (presence/frequency penalties, logprobs) on the tiny fixture model
// on the CPU: it picks what the backend's sampler picks when it changes nothing, its logprobs
// are the log-softmax of the logits the token was drawn from, and its penalties steer greedy
// decoding.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <random>
#include <set>

#include "backend/backend.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"
#include "model/qwen2_5_vl.h"
#include "runtime/generator.h"
#include "text/tokenizer.h"

namespace qwenvl {
namespace {

const std::string kModelDir = std::string(QWENVL_FIXTURES_DIR) + "/models/tiny-tied";
constexpr int64_t kSteps = 24;

class HostLogits : public ::testing::Test {
 protected:
  HostLogits()
      : config_(load_model_config(kModelDir)),
        checkpoint_(Checkpoint::open(kModelDir, config_)),
        tokenizer_(Tokenizer::load(kModelDir + "/tokenizer.json")),
        backend_(make_backend("cpu", DType::BF16, 0)) {
    ModelLimits limits;
    limits.max_context = 256;
    model_.emplace(config_, checkpoint_, *backend_, limits);
  }

  GenerationRequest request(float temperature) const {
    GenerationRequest r;
    r.prompt_ids = tokenizer_.encode("The quick brown fox jumps over the lazy dog, again and");
    r.max_new_tokens = kSteps;
    r.sampling.temperature = temperature;
    r.ignore_eos = true;
    r.seed = seed_;
    return r;
  }
  GenerationResult run(const GenerationRequest& r) {
    Generator generator(*model_, tokenizer_);
    return generator.generate(r, nullptr);
  }

  const uint64_t seed_ = std::random_device{}();
  ModelConfig config_;
  Checkpoint checkpoint_;
  Tokenizer tokenizer_;
  std::unique_ptr<Backend> backend_;
  std::optional<Qwen25VL> model_;
};

TEST_F(HostLogits, PickWhatTheBackendPicksWhenNothingChangesTheLogits) {
  for (float temperature : {0.0f, 0.9f}) {
    GenerationRequest plain = request(temperature);
    plain.sampling.repetition_penalty = 1.3f;  // on the device in one, on the host in the other
    GenerationRequest with_logprobs = plain;
    with_logprobs.top_logprobs = 2;
    const GenerationResult a = run(plain), b = run(with_logprobs);
    EXPECT_EQ(a.tokens, b.tokens) << "temperature " << temperature << ", seed " << seed_;
    EXPECT_TRUE(a.logprobs.empty());
    ASSERT_EQ(b.logprobs.size(), b.tokens.size());
    for (size_t i = 0; i < b.tokens.size(); ++i) EXPECT_EQ(b.logprobs[i].id, b.tokens[i]);
  }
}

TEST_F(HostLogits, FirstLogprobIsTheLogSoftmaxOfThePromptLogitsAtTheTemperature) {
  GenerationRequest r = request(0.7f);
  r.top_logprobs = 5;
  r.keep_prompt_logits = true;
  const GenerationResult result = run(r);
  const std::vector<float>& logits = result.prompt_logits;
  double max = -INFINITY, sum = 0;
  for (float v : logits) max = std::max(max, v / 0.7);
  for (float v : logits) sum += std::exp(v / 0.7 - max);
  auto want = [&](int32_t id) { return logits[size_t(id)] / 0.7 - max - std::log(sum); };
  const TokenLogprob& first = result.logprobs.at(0);
  EXPECT_NEAR(first.logprob, want(result.tokens[0]), 1e-4);
  ASSERT_EQ(first.top.size(), 5u);
  for (const TopLogprob& t : first.top) EXPECT_NEAR(t.logprob, want(t.id), 1e-4);
  std::vector<float> sorted = logits;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  EXPECT_EQ(logits[size_t(first.top[4].id)], sorted[4]);
}

TEST_F(HostLogits, PenaltiesSteerGreedyDecodingAwayFromRepeats) {
  const GenerationResult plain = run(request(0.0f));
  GenerationRequest penalised = request(0.0f);
  penalised.frequency_penalty = 2.0f;
  penalised.presence_penalty = 2.0f;
  penalised.top_logprobs = 1;
  const GenerationResult result = run(penalised);
  // Greedy on the penalised logits: each token is its own step's most likely one.
  for (size_t i = 0; i < result.tokens.size(); ++i)
    EXPECT_EQ(result.logprobs[i].top.at(0).id, result.tokens[i]) << "step " << i;
  const auto distinct = [](const std::vector<int32_t>& t) {
    return std::set<int32_t>(t.begin(), t.end()).size();
  };
  EXPECT_LT(distinct(plain.tokens), size_t(kSteps)) << "the fixture no longer repeats itself";
  EXPECT_GT(distinct(result.tokens), distinct(plain.tokens));
}

}  // namespace
}  // namespace qwenvl
