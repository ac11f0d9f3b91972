// qwenvl serve: an OpenAI-compatible HTTP server over one loaded model (src/server/). Loads
// once, prints the URL, serves until SIGINT or SIGTERM, then cancels what runs and exits 0.
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/load_progress.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "runtime/byte_size.h"
#include "runtime/sampling_limits.h"
#include "server/engine.h"
#include "server/http_server.h"
#include "server/media_domains.h"
#include "server/served_model.h"

namespace qwenvl::cli {

namespace {

constexpr const char* kUsage =
    "usage: qwenvl serve --model DIR [flags]\n"
    "  --host ADDR              address to listen on (default 127.0.0.1)\n"
    "  --port N                 port (default 8000; 0: any free port, printed)\n"
    "  --api-key KEY            require 'Authorization: Bearer KEY' on /v1/ routes\n"
    "  --max-request-bytes N    largest request body (default 64 MiB: images come as base64)\n"
    "  --max-num-seqs N         sequences generated at once (default 16; continuous batching\n"
    "                           over a paged KV cache; 1: each request alone, its decode steps\n"
    "                           captured as graphs)\n"
    "  --kv-cache-tokens N      KV cache the sequences share (default --max-context's; a\n"
    "                           request waits, or the newest is preempted, when it is full)\n"
    "  --image-cache SIZE       host memory for image embeddings reused by content (default\n"
    "                           1GiB; 0: off)\n"
    "  --no-prefix-cache        prefill every prompt whole (default: KV blocks of earlier\n"
    "                           prompts with the same start, images included, are reused)\n"
    "  --batch-invariant        kernels that compute each request's rows the same way whatever\n"
    "                           runs beside it (its greedy tokens the same alone and among\n"
    "                           others; slower passes, CUDA)\n"
    "  --max-queue N            requests that may wait (default 64); beyond: 503, Retry-After\n"
    "  --allowed-media-dir DIR  file:// image URLs are read only under DIR (default: refused)\n"
    "  --allowed-media-domains LIST  http(s) image URLs are fetched only from these hosts\n"
    "                           (comma-separated; *.example.com for its subdomains), and only\n"
    "                           from public addresses (default: refused)\n"
    "  --max-context N          context per request (default min(32768, max_position_embeddings))\n"
    "  --max-pixels N           largest image after resizing (default preprocessor_config's)\n"
    "  --max-image-tokens N     merged tokens one request's images take together (default:\n"
    "                           one max-pixels image's); larger sets are downscaled\n"
    "  --max-tokens N           a request's default max_tokens (default generation_config's)\n"
    "  --device cpu|cuda|auto   --dtype bf16|fp16 (CUDA)   --threads N\n"
    "  --quantize fp8           the language model's projections as FP8 E4M3 weights (a\n"
    "                           16-bit checkpoint, quantized per output channel at load)\n"
    "  --max-memory SPEC        GPU budget, e.g. cuda:0=8GiB; --offload stream|cpu|auto;\n"
    "  --device-map FILE.json   as for generate\n";

constexpr int64_t kMaxContextLimit = int64_t(1) << 24;
constexpr int64_t kMaxQueueLimit = 4096;
constexpr int64_t kMaxNumSeqsLimit = 1024;
constexpr int64_t kDefaultMaxNumSeqs = 16;
constexpr int64_t kMaxKvCacheTokens = int64_t(1) << 26;

int g_stop_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int signal) {
  const char byte = char(signal);
  const ssize_t written = write(g_stop_pipe[1], &byte, 1);
  (void)written;
}

}  // namespace

int run_serve(int argc, char** argv) {
  const Args args(argc, argv,
                  {"model",
                   "host",
                   "port",
                   "api-key",
                   "max-request-bytes",
                   "max-num-seqs",
                   "kv-cache-tokens",
                   "image-cache",
                   "max-queue",
                   "allowed-media-dir",
                   "allowed-media-domains",
                   "max-context",
                   "max-pixels",
                   "max-image-tokens",
                   "max-tokens",
                   "device",
                   "dtype",
                   "threads",
                   "max-memory",
                   "offload",
                   "device-map",
                   "quantize"},
                  {"help", "no-prefix-cache", "batch-invariant"});
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args.positional().empty())
    fail("unexpected argument '", args.positional().front(), "' (see --help)");
  ServeOptions options;
  options.model_dir = args.require("model");
  options.device = args.get("device").value_or("auto");
  options.cuda_dtype = parse_cuda_dtype(args.get("dtype").value_or("bf16"));
  options.threads = int(args.get_int("threads", 0, 0, 1024));
  options.quantize = args.get("quantize").value_or("");
  options.max_context = args.get_int("max-context", 32768, 2, kMaxContextLimit);
  options.max_pixels = args.get_int("max-pixels", 0, 1, kMaxResizedPixels);
  options.max_image_tokens = args.get_int("max-image-tokens", 0, 1, kMaxResizedPixels / (28 * 28));
  options.default_max_tokens = args.get_int("max-tokens", 0, 1, kMaxNewTokensLimit);
  options.placement = placement_options(args);
  options.allowed_media_dir = args.get("allowed-media-dir").value_or("");
  if (!options.allowed_media_dir.empty() &&
      !std::filesystem::is_directory(options.allowed_media_dir))
    fail("--allowed-media-dir ", options.allowed_media_dir, " is not a directory");
  options.allowed_media_domains = args.get("allowed-media-domains").value_or("");
  if (!options.allowed_media_domains.empty())
    MediaDomains::parse(options.allowed_media_domains);  // a bad list fails before the load
  HttpOptions http;
  http.api_key = args.get("api-key").value_or("");
  http.max_request_bytes =
      args.get_int("max-request-bytes", http.max_request_bytes, 1024, int64_t(1) << 34);
  http.max_queue = size_t(args.get_int("max-queue", int64_t(http.max_queue), 1, kMaxQueueLimit));
  options.max_sequences =
      int(args.get_int("max-num-seqs", kDefaultMaxNumSeqs, 1, kMaxNumSeqsLimit));
  options.kv_cache_tokens = args.get_int("kv-cache-tokens", 0, 0, kMaxKvCacheTokens);
  options.batch_invariant = args.has("batch-invariant");
  BatchCaches caches;
  caches.image_bytes = parse_byte_size(args.get("image-cache").value_or("1GiB"), "--image-cache");
  caches.prefix = !args.has("no-prefix-cache");
  // The image-embedding cache is host memory within the plan's CPU budget.
  if (options.max_sequences > 1) options.placement.host_cache_bytes = caches.image_bytes;
  const std::string host = args.get("host").value_or("127.0.0.1");
  const int port = int(args.get_int("port", 8000, 0, 65535));

  // SIGINT and SIGTERM write a byte into a pipe that one thread waits on (a handler may only do
  // async-signal-safe things, and any thread may take the signal: OpenBLAS starts its own before
  // main, with no signal mask we could set).
  if (pipe(g_stop_pipe) != 0) fail_resource("cannot create a pipe for signal handling");
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  std::unique_ptr<ServedModel> served;
  {
    LoadProgress progress;
    served = load_served_model(
        options, [&progress](size_t read, size_t total) { progress.update(read, total); });
  }
  http.model_name = served->name;
  ServerMetrics metrics;
  Engine engine(*served->model, served->files.tokenizer, served->limits, metrics, http.max_queue,
                caches);
  HttpServer server(engine, metrics, served->defaults, http);
  const int bound = server.bind(host, port);
  std::printf(
      "qwenvl serve: %s on %s (context %lld tokens, images up to %lld pixels, %d sequences at "
      "once sharing a KV cache of %lld tokens)\n",
      served->name.c_str(), served->backend->name().c_str(),
      static_cast<long long>(served->limits.max_context),
      static_cast<long long>(served->defaults.max_image_pixels), served->limits.max_sequences,
      static_cast<long long>(served->model->kv_cache_blocks() * kKvBlockSize));
  if (served->limits.max_sequences > 1)
    std::printf("qwenvl serve: image embeddings cached in %s of host memory; prefix cache %s\n",
                caches.image_bytes > 0 ? format_bytes(caches.image_bytes).c_str() : "0 B (off)",
                caches.prefix ? "on" : "off");
  std::printf("qwenvl serve: listening on http://%s:%d/v1\n", host.c_str(), bound);
  std::fflush(stdout);

  std::atomic<bool> run_returned{false};
  std::thread waiter([&] {
    char signal = 0;
    while (read(g_stop_pipe[0], &signal, 1) < 0 && errno == EINTR) {
    }
    if (signal != 0)
      std::fprintf(stderr, "qwenvl serve: %s, stopping\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
    engine.stop();
    // A stop() before run() listens is lost: a signal that came that early waits for it (or for
    // run() to have given up).
    while (!server.listening() && !run_returned.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server.stop();
  });
  server.run();
  run_returned.store(true);
  // run() also returns when listening fails: wake the waiter with a zero byte.
  const char none = 0;
  if (write(g_stop_pipe[1], &none, 1) != 1) std::fprintf(stderr, "qwenvl serve: cannot wake\n");
  waiter.join();
  engine.stop();
  return 0;
}

}  // namespace qwenvl::cli
