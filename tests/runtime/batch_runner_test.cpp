// Continuous batching on the tiny fixture model on the CPU: requests running together, in a KV
// cache of shared blocks, produce the greedy tokens they produce alone (where the alone run's
// top-2 logit margin exceeds 1e-2: rows batched together may round differently); a cache too
// small for all of them preempts and recomputes without changing a token; cancelled and failed
// requests end alone and give their blocks back.
#include "runtime/batch_runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"
#include "core/error.h"
#include "model/model_test_util.h"
#include "model/qwen2_5_vl.h"
#include "runtime/generator.h"
#include "text/tokenizer.h"

namespace qwenvl {
namespace {

const std::string kModelDir = std::string(QWENVL_FIXTURES_DIR) + "/models/tiny-tied";
constexpr float kMargin = 1e-2f;

class BatchRunnerTest : public ::testing::Test {
 protected:
  BatchRunnerTest()
      : config_(load_model_config(kModelDir)),
        checkpoint_(Checkpoint::open(kModelDir, config_)),
        tokenizer_(Tokenizer::load(kModelDir + "/tokenizer.json")),
        backend_(make_backend("cpu", DType::BF16, 0)) {}

  void load(int max_sequences, int64_t kv_cache_tokens, int64_t prefill_chunk = 48) {
    ModelLimits limits;
    limits.max_context = 192;
    limits.prefill_chunk = prefill_chunk;
    limits.max_sequences = max_sequences;
    limits.kv_cache_tokens = kv_cache_tokens;
    limits.max_image_patches = 64;
    limits.max_image_tokens = 16;
    model_.emplace(config_, checkpoint_, *backend_, limits);
  }

  // Request i: a text of its own, every third with an image (4x8 patches: 8 tokens), greedy.
  GenerationRequest request(int i, int64_t max_new_tokens) const {
    GenerationRequest r;
    const std::string text = "Request " + std::to_string(i) + std::string(size_t(i % 5) * 7, 'x') +
                             ": tell me about the number " + std::to_string(i * 37);
    r.prompt_ids = tokenizer_.encode(text);
    if (i % 3 == 1) {
      r.images = {test::random_image(4, 8, uint32_t(100 + i))};
      std::vector<int32_t> ids{config_.vision_start_token_id};
      for (int p = 0; p < 8; ++p) ids.push_back(config_.image_token_id);
      ids.push_back(config_.vision_end_token_id);
      r.prompt_ids.insert(r.prompt_ids.begin() + 2, ids.begin(), ids.end());
    }
    r.max_new_tokens = max_new_tokens;
    r.sampling.temperature = 0.0f;
    r.ignore_eos = true;
    return r;
  }

  // The request alone through the one-sequence generator, with the margins of its picks.
  GenerationResult alone(GenerationRequest r) {
    r.top_logprobs = 2;
    Generator generator(*model_, tokenizer_);
    return generator.generate(r, nullptr);
  }

  // Equal tokens until they part where the alone run's margin is under kMargin (the two may then
  // go different ways); returns how many were compared.
  static size_t expect_same_tokens(const GenerationResult& want, const GenerationResult& got,
                                   const std::string& what) {
    EXPECT_EQ(want.tokens.size(), got.tokens.size()) << what;
    for (size_t i = 0; i < std::min(want.tokens.size(), got.tokens.size()); ++i) {
      if (want.tokens[i] == got.tokens[i]) continue;
      const TokenLogprob& step = want.logprobs[i];
      const float margin = step.top.size() > 1 ? step.top[0].logprob - step.top[1].logprob : 1.0f;
      EXPECT_LT(margin, kMargin) << what << ": token " << i << " differs";
      return i;
    }
    return want.tokens.size();
  }

  struct Outcome {
    GenerationResult result;
    std::string text;
    std::string error;
    bool done = false;
  };
  BatchCallbacks callbacks(Outcome& o) {
    BatchCallbacks c;
    c.on_text = [&o](const std::string& piece) { o.text += piece; };
    c.on_done = [&o](GenerationResult& r) {
      o.result = r;
      o.done = true;
    };
    c.on_error = [&o](std::exception_ptr e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& error) {
        o.error = error.what();
      }
      o.done = true;
    };
    return c;
  }
  // Queues every request on `runner`, each reporting into its own Outcome of `got` (sized here).
  void add_all(BatchRunner& runner, const std::vector<GenerationRequest>& requests,
               std::vector<Outcome>& got) {
    got = std::vector<Outcome>(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) runner.add(requests[i], callbacks(got[i]));
  }
  // Each request ended without an error, with the tokens it produces alone (expect_same_tokens);
  // returns how many tokens were compared in all.
  static size_t expect_as_alone(const std::vector<GenerationResult>& want,
                                const std::vector<Outcome>& got) {
    size_t compared = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_TRUE(got[i].done && got[i].error.empty()) << i << ": " << got[i].error;
      if (got[i].done && got[i].error.empty())
        compared += expect_same_tokens(want[i], got[i].result, "request " + std::to_string(i));
    }
    return compared;
  }
  static BatchPass run_until_idle(BatchRunner& runner) {
    BatchPass total;
    for (int pass = 0; !runner.idle(); ++pass) {
      EXPECT_LT(pass, 100000) << "the runner does not finish";
      if (pass >= 100000) break;
      const BatchPass p = runner.step();
      total.decode_rows = std::max(total.decode_rows, p.decode_rows);
      total.prefill_rows += p.prefill_rows;
      total.preempted += p.preempted;
    }
    return total;
  }

  ModelConfig config_;
  Checkpoint checkpoint_;
  Tokenizer tokenizer_;
  std::unique_ptr<Backend> backend_;
  std::optional<Qwen25VL> model_;
};

TEST_F(BatchRunnerTest, SeventeenRequestsTogetherGiveTheirTokensAlone) {
  load(17, 17 * 192);
  // Decode passes padded as a backend that replays captures runs them (model/batch_step.h).
  model_->pad_decode_batches(true);
  std::vector<GenerationRequest> requests;
  std::vector<GenerationResult> want;
  for (int i = 0; i < 17; ++i) {
    requests.push_back(request(i, 20 + 2 * i));  // each runs past the admission of the last
    want.push_back(alone(requests.back()));
  }
  BatchRunner runner(*model_, tokenizer_);
  std::vector<Outcome> got;
  add_all(runner, requests, got);
  const BatchPass passes = run_until_idle(runner);
  EXPECT_EQ(passes.decode_rows, 17) << "once all are admitted, every request decodes in a pass";
  EXPECT_EQ(passes.preempted, 0);
  size_t compared = 0, total = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(got[i].done && got[i].error.empty()) << i << ": " << got[i].error;
    compared += expect_same_tokens(want[i], got[i].result, "request " + std::to_string(i));
    total += want[i].tokens.size();
    EXPECT_EQ(got[i].result.finish_reason, "length");
    EXPECT_EQ(got[i].text, got[i].result.text);
  }
  EXPECT_GT(compared, total * 3 / 4) << "too many tokens went their own way";
  EXPECT_EQ(runner.used_blocks(), 0);
}

TEST_F(BatchRunnerTest, RepetitionPenaltiesAndSamplingPickAsAlone) {
  // The batch applies every row's repetition penalty in one op before its greedy picks; the
  // generator applies it per sequence over a device history. Sampled rows draw as alone.
  load(6, 6 * 192);
  std::vector<GenerationRequest> requests;
  std::vector<GenerationResult> want;
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r = request(i, 24);
    r.sampling.repetition_penalty = i % 2 == 0 ? 1.3f : 1.0f;
    if (i >= 4) r.sampling.temperature = 0.8f, r.seed = uint64_t(i);
    requests.push_back(r);
    want.push_back(alone(r));
  }
  BatchRunner runner(*model_, tokenizer_);
  std::vector<Outcome> got;
  add_all(runner, requests, got);
  run_until_idle(runner);
  expect_as_alone(want, got);
}

TEST_F(BatchRunnerTest, SharedPrefixesWithMoreRepeatedIdsThanTheCacheHoldsPickAsAlone) {
  // Three requests share a prompt of 150 distinct ids in a cache of 448 tokens (its first two
  // blocks shared): their repeated ids, 3 x 150 and more, outgrow the cache's count and the
  // batch penalizes them in more than one op.
  load(3, 448);
  BatchCaches caches;
  caches.prefix = true;
  BatchRunner runner(*model_, tokenizer_, caches);
  std::vector<GenerationResult> want;
  std::vector<Outcome> got(3);
  GenerationRequest r;
  for (int32_t id = 1000; id < 1150; ++id) r.prompt_ids.push_back(id);
  r.max_new_tokens = 12;
  r.sampling.temperature = 0.0f;
  r.sampling.repetition_penalty = 1.3f;
  r.ignore_eos = true;
  const GenerationResult alone_result = alone(r);
  for (size_t i = 0; i < got.size(); ++i) runner.add(r, callbacks(got[i]));
  const BatchPass passes = run_until_idle(runner);
  EXPECT_EQ(passes.decode_rows, 3);
  EXPECT_EQ(runner.prefix_hit_tokens(), 2 * 128);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(got[i].done && got[i].error.empty()) << i << ": " << got[i].error;
    expect_same_tokens(alone_result, got[i].result, "request " + std::to_string(i));
  }
  EXPECT_EQ(runner.used_blocks(), 0);
}

TEST_F(BatchRunnerTest, ShortPromptsShareAPassAndImagesWaitForWorkspace) {
  // Chunks of 160 rows: the first pass prefills the text prompts and two image prompts together
  // (8 image tokens each: the plan's 16); the third image prompt waits until their embeddings
  // leave the workspace, and the text prompt behind it waits too.
  load(6, 6 * 192, 160);
  std::vector<GenerationRequest> requests;
  std::vector<GenerationResult> want;
  for (int i : {0, 2, 1, 4, 7, 3}) {  // 1, 4 and 7 have images
    requests.push_back(request(i, 12));
    want.push_back(alone(requests.back()));
  }
  auto rows_of = [&](std::initializer_list<size_t> which) {
    int64_t rows = 0;
    for (size_t i : which) rows += int64_t(requests[i].prompt_ids.size());
    return rows;
  };
  ASSERT_LT(rows_of({0, 1, 2, 3}), 160);
  const std::vector<size_t> marks = model_->workspace_marks();
  BatchRunner runner(*model_, tokenizer_);
  std::vector<Outcome> got;
  add_all(runner, requests, got);
  EXPECT_EQ(runner.step().prefill_rows, rows_of({0, 1, 2, 3}));
  const BatchPass second = runner.step();
  EXPECT_EQ(second.decode_rows, 4);
  EXPECT_EQ(second.prefill_rows, rows_of({4, 5}));
  run_until_idle(runner);
  expect_as_alone(want, got);
  EXPECT_EQ(runner.used_blocks(), 0);
  EXPECT_EQ(model_->workspace_marks(), marks) << "every image's embeddings left the workspace";
}

TEST_F(BatchRunnerTest, EmbeddingsUnderOthersWaitForThemToLeave) {
  // Chunks of 16 rows: the first image prompt ends its prefill while the second, admitted after
  // it (its embeddings above the first's), still runs: the first's stay until the second's go.
  load(4, 4 * 192, 16);
  std::vector<GenerationRequest> requests;
  std::vector<GenerationResult> want;
  for (int i : {1, 4}) {
    requests.push_back(request(i, 8));
    want.push_back(alone(requests.back()));
  }
  const std::vector<size_t> marks = model_->workspace_marks();
  BatchRunner runner(*model_, tokenizer_);
  std::vector<Outcome> got;
  add_all(runner, requests, got);
  run_until_idle(runner);
  expect_as_alone(want, got);
  EXPECT_EQ(model_->workspace_marks(), marks);
}

TEST_F(BatchRunnerTest, ACacheTooSmallPreemptsAndRecomputes) {
  // 3 blocks of 64 rows for 6 requests of ~20-50 prompt and 60 new tokens; chunks of 16 rows.
  load(6, 192, 16);
  model_->pad_decode_batches(true);
  std::vector<GenerationRequest> requests;
  std::vector<GenerationResult> want;
  for (int i = 0; i < 6; ++i) {
    requests.push_back(request(i, 60));
    want.push_back(alone(requests.back()));
  }
  BatchRunner runner(*model_, tokenizer_);
  std::vector<Outcome> got;
  add_all(runner, requests, got);
  const BatchPass passes = run_until_idle(runner);
  EXPECT_GT(passes.preempted, 0);
  size_t compared = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(got[i].done && got[i].error.empty()) << i << ": " << got[i].error;
    compared += expect_same_tokens(want[i], got[i].result, "request " + std::to_string(i));
  }
  EXPECT_GT(compared, size_t(6 * 60 * 3 / 4)) << "too many tokens went their own way";
  EXPECT_EQ(runner.used_blocks(), 0);
}

TEST_F(BatchRunnerTest, CancelledAndFailedRequestsEndAloneAndFreeTheirBlocks) {
  load(4, 4 * 192);
  BatchRunner runner(*model_, tokenizer_);
  Outcome cancelled, failed, waiting_cancel, fine;
  GenerationRequest r = request(0, 40);
  BatchCallbacks c = callbacks(cancelled);
  c.cancelled = [&cancelled] { return cancelled.text.size() > 3; };
  runner.add(r, c);
  GenerationRequest bad = request(1, 10);
  bad.images[0].pixel_values = Tensor::empty({5, 1176}, DType::F32);  // not its grid's 32 patches
  runner.add(bad, callbacks(failed));
  GenerationRequest unplaced = request(2, 10);
  unplaced.prompt_ids.push_back(config_.image_token_id);  // a pad token without an image
  EXPECT_THROW(runner.add(unplaced, callbacks(failed)), Error);
  BatchCallbacks gone = callbacks(waiting_cancel);
  gone.cancelled = [] { return true; };
  runner.add(request(3, 10), gone);
  runner.add(request(4, 12), callbacks(fine));
  run_until_idle(runner);
  EXPECT_EQ(cancelled.result.finish_reason, "cancelled");
  EXPECT_LT(cancelled.result.tokens.size(), size_t(40));
  EXPECT_TRUE(failed.done && !failed.error.empty());
  EXPECT_EQ(waiting_cancel.result.finish_reason, "cancelled");
  EXPECT_TRUE(waiting_cancel.result.tokens.empty());
  EXPECT_EQ(fine.result.tokens.size(), size_t(12));
  EXPECT_EQ(runner.used_blocks(), 0);
  EXPECT_THROW(runner.add(request(5, 1000), callbacks(fine)), Error);  // past the context
}

TEST_F(BatchRunnerTest, CachesSkipARepeatedImageAndPrefixWithoutChangingTokens) {
  load(4, 4 * 192);
  BatchCaches caches;
  caches.image_bytes = 1 << 20;
  caches.prefix = true;
  BatchRunner runner(*model_, tokenizer_, caches);
  // Turn one: an image and ~90 tokens of text.
  GenerationRequest first = request(1, 30);
  const std::vector<int32_t> more =
      tokenizer_.encode(" then describe the picture in detail, every colour and every shape");
  for (int i = 0; i < 4; ++i)
    first.prompt_ids.insert(first.prompt_ids.end(), more.begin(), more.end());
  Outcome one;
  runner.add(first, callbacks(one));
  run_until_idle(runner);
  ASSERT_TRUE(one.done && one.error.empty()) << one.error;
  expect_same_tokens(alone(first), one.result, "turn one");
  EXPECT_EQ(runner.prefix_hit_tokens(), 0);
  ASSERT_NE(runner.image_cache(), nullptr);
  EXPECT_EQ(runner.image_cache()->misses(), 1);

  // Turn two: turn one's prompt and answer, then a question. Its start comes from the blocks
  // turn one published (its last token was never fed: 29 of 30 are cached), the image with them.
  GenerationRequest second = first;
  second.prompt_ids.insert(second.prompt_ids.end(), one.result.tokens.begin(),
                           one.result.tokens.end());
  const std::vector<int32_t> question = tokenizer_.encode(" And what else?");
  second.prompt_ids.insert(second.prompt_ids.end(), question.begin(), question.end());
  second.max_new_tokens = 20;
  ASSERT_LE(int64_t(second.prompt_ids.size()) + 20, model_->max_context());
  Outcome two;
  runner.add(second, callbacks(two));
  run_until_idle(runner);
  ASSERT_TRUE(two.done && two.error.empty()) << two.error;
  expect_same_tokens(alone(second), two.result, "turn two");
  const int64_t published = (int64_t(first.prompt_ids.size()) + 29) / kKvBlockSize * kKvBlockSize;
  EXPECT_GE(published, kKvBlockSize);
  EXPECT_EQ(runner.prefix_hit_tokens(), published);
  EXPECT_EQ(runner.image_cache()->hits() + runner.image_cache()->misses(), 1)
      << "the image's pads were all cached: nothing to encode";

  // The same image after another first token: no block matches, the embeddings do.
  GenerationRequest third = first;
  third.prompt_ids[0] = third.prompt_ids[0] == 100 ? 101 : 100;
  Outcome three;
  runner.add(third, callbacks(three));
  run_until_idle(runner);
  ASSERT_TRUE(three.done && three.error.empty()) << three.error;
  expect_same_tokens(alone(third), three.result, "another start");
  EXPECT_EQ(runner.prefix_hit_tokens(), published);
  EXPECT_EQ(runner.image_cache()->hits(), 1);
  EXPECT_EQ(runner.used_blocks(), 0);
}

}  // namespace
}  // namespace qwenvl
