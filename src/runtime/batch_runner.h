#pragma once
// Continuous batching: many requests generate at once on one model, every running sequence
// advancing by one token per pass. Each call to step() runs one pass (Qwen25VL::forward_batch):
// a decode row for every running sequence, then chunks of the prompts of the sequences being
// admitted, as many rows as the prefill chunk holds (prefill in chunks mixed with decode, so a
// long image prompt does not stall the streams already running, and short prompts share a
// pass). Prefilling sequences keep their image embeddings in the workspace, whose plan holds
// max_image_tokens of them: image requests are admitted while their embeddings fit beside those
// held. Their keys live in blocks of the shared KV cache
// (runtime/kv_blocks.h), taken as sequences grow; when blocks run out the most recently admitted
// sequence is preempted: its blocks return and it waits to be prefilled again from its prompt and
// the tokens it has produced (recompute), keeping its sampler's and output's state.
//
// Two caches, when asked for (BatchCaches): image embeddings by content
// (runtime/image_embedding_cache.h), and the prefix cache (runtime/kv_blocks.h): each sequence's
// full blocks are published under the hash of its tokens and images up to their end, and a
// sequence admitted later whose prompt starts the same takes those blocks instead of prefilling
// them. A multi-turn chat about one image then neither re-encodes nor re-prefills it.
//
// Single-threaded: the caller (the server's worker) adds requests and calls step(); callbacks run
// inside step().
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/qwen2_5_vl.h"
#include "runtime/generator.h"
#include "runtime/image_embedding_cache.h"
#include "runtime/kv_blocks.h"
#include "text/tokenizer.h"

namespace qwenvl {

struct BatchCallbacks {
  std::function<void(const std::string&)> on_text;  // text pieces as they become final
  // Once, at the end: the result (finish_reason "stop", "length" or "cancelled"), or the error
  // that failed this request alone (its images, its prompt), the others running on.
  std::function<void(GenerationResult&)> on_done;
  std::function<void(std::exception_ptr)> on_error;
  // Polled every pass: true ends the request as "cancelled" wherever it is (waiting, prefilling,
  // decoding), its blocks returned at once.
  std::function<bool()> cancelled;
};

struct BatchCaches {
  int64_t image_bytes = 0;  // host bytes for image embeddings; 0: no image cache
  bool prefix = false;      // reuse published KV blocks
};

// What step() did, for metrics and tests.
struct BatchPass {
  int decode_rows = 0;   // running sequences that advanced by a token
  int prefill_rows = 0;  // prompt rows of the sequence being admitted
  int preempted = 0;     // sequences sent back to wait for blocks
};

class BatchRunner {
 public:
  // model: built with limits.max_sequences >= 1; its own prefill and decode steps must not be
  // used while the runner has sequences.
  BatchRunner(Qwen25VL& model, const Tokenizer& tokenizer, BatchCaches caches = {});
  ~BatchRunner();

  // Checks the request (its context, its logprob settings) and queues it; Error when it can
  // never run.
  void add(GenerationRequest request, BatchCallbacks callbacks);
  // One pass; nothing when idle. An error of the pass itself (the device) fails every sequence
  // through on_error and is rethrown.
  BatchPass step();

  bool idle() const { return waiting_.empty() && running_.empty(); }
  int running() const { return int(running_.size()); }
  int waiting() const { return int(waiting_.size()); }
  int64_t used_blocks() const { return blocks_.total() - blocks_.free(); }
  int64_t free_blocks() const { return blocks_.free(); }
  int64_t cached_blocks() const { return blocks_.cached(); }
  // Prompt positions whose keys came from the prefix cache rather than a prefill.
  int64_t prefix_hit_tokens() const { return prefix_hit_tokens_; }
  const ImageEmbeddingCache* image_cache() const { return image_cache_ ? &*image_cache_ : nullptr; }
  // Ends every sequence with `error` (the server shutting down, a failed pass).
  void fail_all(std::exception_ptr error);

 private:
  struct Sequence;
  void admit();
  void start_prefill(Sequence& s);
  void end_prefill(Sequence& s);
  void finish(Sequence& s);
  void fail(Sequence& s, std::exception_ptr error);
  void preempt(Sequence& s);
  void drop_finished();
  // Samples the pass's logit rows (one per sequence in `sampled`) into tokens_host_.
  void pick_tokens(const std::vector<Sequence*>& sampled);
  int32_t id_at(const Sequence& s, int64_t p) const;
  int32_t position_at(const Sequence& s, int row, int64_t p) const;
  // Hashes of s's first `count` blocks (computed as needed), and publishing its full ones.
  void hash_blocks(Sequence& s, size_t count) const;
  void publish_full_blocks(Sequence& s);

  Qwen25VL& model_;
  const Tokenizer& tokenizer_;
  KvBlocks blocks_;
  const BatchCaches caches_;
  std::optional<ImageEmbeddingCache> image_cache_;
  int64_t prefix_hit_tokens_ = 0;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order
  std::vector<Sequence*> prefilling_;               // of running_, in admission order
  // Image embeddings held in the workspace, in the order they were taken: a stack, since the
  // workspace releases from its top. A hold its sequence no longer needs (owner null) stays until
  // the holds above it go.
  struct WorkspaceHold {
    const Sequence* owner = nullptr;
    std::vector<size_t> marks;  // the workspaces before the embeddings
    int64_t rows = 0;
  };
  std::vector<WorkspaceHold> holds_;
  void release_hold(const Sequence& s);
  int64_t held_rows() const;
  // Prompt rows the prefilling sequences have left to run.
  int64_t pending_prefill_rows() const;
  Tensor tokens_host_;  // I32 [max_sequences]
  // The staging of Qwen25VL::batch_repeats.
  Tensor repeat_ids_host_, repeat_offsets_host_, repeat_penalties_host_;
};

}  // namespace qwenvl
