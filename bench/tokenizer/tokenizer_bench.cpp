// Encode throughput of qwenvl's tokenizer, single-threaded, on ~20 MB of mixed text (English,
// CJK, Korean, Arabic, Hindi, Cyrillic, emoji, code, numbers, whitespace). Prints MB/s of input
// bytes and tokens/s, the median of several runs, plus load time and decode throughput.
//   tokenizer_bench [tokenizer.json or model folder] [--mb N] [--runs N] [--text FILE]
//                   [--corpus tests/fixtures/tokenizer/corpus.jsonl]
// With --text FILE the input is FILE repeated to N MB. With --corpus, the two measurements of
// tools/reference/tokenizer_ref.py's bench_tokenizer on the same texts (each corpus text after
// bytes.decode("utf-8", "replace")): `per_text`, every text encoded on its own, the corpus
// repeated to ~N MB; `one_string`, the texts joined and repeated to ~2 MB, encoded as one call.
// Like the reference it reports the best of the runs there.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// CPU time of this thread: on a shared, busy machine wall time also counts other processes.
double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// A few paragraphs per script; repeated with varying separators so the text is not one loop of
// identical words (the word cache would make that unrealistically fast).
const char* kParagraphs[] = {
    "The quick brown fox jumps over the lazy dog. It's a truth universally acknowledged that a "
    "single model in possession of a good tokenizer must be in want of speed. DON'T panic; "
    "we'll see 1,234,567.89 tokens/s (maybe).\n\n",
    "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)"
    "\n\nfor i in range(10):\n\tprint(f\"{i}: {fib(i)}\")  # comment\n",
    "{\"model_type\": \"qwen2_5_vl\", \"hidden_size\": 3584, \"rope_scaling\": {\"type\": "
    "\"mrope\","
    " \"mrope_section\": [16, 24, 24]}, \"vocab_size\": 152064}\r\n",
    "\xE9\x80\x9A\xE4\xB9\x89\xE5\x8D\x83\xE9\x97\xAE\xE6\x98\xAF\xE9\x98\xBF\xE9\x87\x8C\xE5"
    "\xB7\xB4\xE5\xB7\xB4\xE5\xBC\x80\xE5\x8F\x91\xE7\x9A\x84\xE5\xA4\xA7\xE8\xAF\xAD\xE8\xA8"
    "\x80\xE6\xA8\xA1\xE5\x9E\x8B\xE3\x80\x82\xE8\xBF\x99\xE5\xBC\xA0\xE5\x9B\xBE\xE7\x89\x87"
    "\xE9\x87\x8C\xE6\x9C\x89\xE4\xB8\x80\xE5\x8F\xAA\xE7\x8C\xAB\xE3\x80\x82\n",
    "\xE4\xBB\x8A\xE6\x97\xA5\xE3\x81\xAF\xE3\x81\x84\xE3\x81\x84\xE5\xA4\xA9\xE6\xB0\x97\xE3"
    "\x81\xA7\xE3\x81\x99\xE3\x81\xAD\xE3\x80\x82\xE3\x82\xAB\xE3\x82\xBF\xE3\x82\xAB\xE3\x83"
    "\x8A\xE3\x82\x82\xE3\x81\x82\xE3\x82\x8A\xE3\x81\xBE\xE3\x81\x99\xE3\x80\x82 ",
    "\xEC\x95\x88\xEB\x85\x95\xED\x95\x98\xEC\x84\xB8\xEC\x9A\x94, \xEC\x84\xB8\xEA\xB3\x84! "
    "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD8\xA8\xD8\xA7\xD9\x84\xD8\xB9\xD8\xA7\xD9\x84"
    "\xD9\x85 \xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87 "
    "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82, \xD0\xBC\xD0\xB8\xD1\x80! ",
    "\xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91"
    "\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 \xF0\x9F\x87\xAF\xF0\x9F\x87\xB5 caf\xC3\xA9 na\xC3\xAFve"
    "    \n\n\n",
};

std::string build_mixed_text(size_t target_bytes) {
  std::string text;
  text.reserve(target_bytes + 4096);
  uint64_t state = 12345;
  auto next = [&] { return state = state * 6364136223846793005ull + 1442695040888963407ull; };
  const size_t paragraphs = sizeof kParagraphs / sizeof kParagraphs[0];
  while (text.size() < target_bytes) {
    text += kParagraphs[(next() >> 33) % paragraphs];
    text += std::to_string((next() >> 40) % 100000);  // vary numbers and words a little
    text += (next() >> 63) ? " " : "\n";
  }
  return text;
}

std::string repeat_file(const std::string& path, size_t target_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) qwenvl::fail("cannot open --text ", path);
  std::ostringstream s;
  s << in.rdbuf();
  std::string unit = s.str(), text;
  if (unit.empty()) qwenvl::fail("--text ", path, " is empty");
  while (text.size() < target_bytes) text += unit;
  return text;
}

std::string base64_decode(const std::string& in) {
  std::string out;
  int acc = 0, bits = 0;
  for (char c : in) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (v < 0) continue;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// The corpus texts as the reference encodes them: raw bytes with invalid UTF-8 replaced.
std::vector<std::string> read_corpus(const std::string& path) {
  std::ifstream in(path);
  if (!in) qwenvl::fail("cannot open --corpus ", path);
  std::vector<std::string> texts;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto row = nlohmann::json::parse(line);
    texts.push_back(qwenvl::utf8::make_valid(base64_decode(row.at("utf8_b64").get<std::string>())));
  }
  if (texts.empty()) qwenvl::fail("--corpus ", path, " has no cases");
  return texts;
}

// Best wall time and thread CPU time of `runs` calls of fn.
template <typename Fn>
std::pair<double, double> best_of(int runs, Fn&& fn) {
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < runs; ++r) {
    auto t = Clock::now();
    double cpu = thread_cpu_seconds();
    fn();
    best_cpu = std::min(best_cpu, thread_cpu_seconds() - cpu);
    best = std::min(best, seconds_since(t));
  }
  return {best, best_cpu};
}

void bench_corpus(const qwenvl::Tokenizer& tokenizer, const std::string& path, double mb,
                  int runs) {
  std::vector<std::string> texts = read_corpus(path);
  size_t unit = 0;
  for (const std::string& t : texts) unit += t.size();
  size_t copies = std::max<size_t>(1, size_t(mb * 1e6) / unit);
  size_t tokens = 0;
  auto [wall, cpu] = best_of(runs, [&] {
    tokens = 0;
    for (size_t c = 0; c < copies; ++c)
      for (const std::string& t : texts) tokens += tokenizer.encode(t).size();
  });
  double bytes = double(unit * copies);
  std::printf(
      "per_text   %.1f MB (%zu copies of %zu texts), %zu tokens: %.1f MB/s, "
      "%.2f M tokens/s (best of %d); CPU time %.1f MB/s\n",
      bytes / 1e6, copies, texts.size(), tokens, bytes / 1e6 / wall, double(tokens) / 1e6 / wall,
      runs, bytes / 1e6 / cpu);

  std::string joined;
  for (const std::string& t : texts) joined += t;
  std::string one;
  for (size_t c = 0; c < std::max<size_t>(1, size_t(2e6) / unit); ++c) one += joined;
  size_t one_tokens = 0;
  auto [one_wall, one_cpu] = best_of(runs, [&] { one_tokens = tokenizer.encode(one).size(); });
  std::printf("one_string %.1f MB, %zu tokens: %.1f MB/s (best of %d); CPU time %.1f MB/s\n",
              one.size() / 1e6, one_tokens, one.size() / 1e6 / one_wall, runs,
              one.size() / 1e6 / one_cpu);
}

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer_path = std::string(QWENVL_SOURCE_DIR) + "/tests/fixtures/tokenizer";
  std::string text_file, corpus_file;
  double mb = 20;
  int runs = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--mb" && i + 1 < argc)
      mb = std::atof(argv[++i]);
    else if (a == "--runs" && i + 1 < argc)
      runs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--text" && i + 1 < argc)
      text_file = argv[++i];
    else if (a == "--corpus" && i + 1 < argc)
      corpus_file = argv[++i];
    else
      tokenizer_path = a;
  }
  try {
    auto t0 = Clock::now();
    qwenvl::Tokenizer tokenizer = qwenvl::Tokenizer::load(tokenizer_path);
    double load_s = seconds_since(t0);
    if (!corpus_file.empty()) {
      std::printf("tokenizer load      %.3f s\n", load_s);
      bench_corpus(tokenizer, corpus_file, mb, runs);
      return 0;
    }
    size_t target = size_t(mb * 1e6);
    std::string text =
        text_file.empty() ? build_mixed_text(target) : repeat_file(text_file, target);

    std::vector<double> times, cpu_times;
    std::vector<int32_t> ids;
    for (int r = 0; r < runs; ++r) {
      auto t = Clock::now();
      double cpu = thread_cpu_seconds();
      ids = tokenizer.encode(text);
      cpu_times.push_back(thread_cpu_seconds() - cpu);
      times.push_back(seconds_since(t));
    }
    std::sort(times.begin(), times.end());
    std::sort(cpu_times.begin(), cpu_times.end());
    double median = times[times.size() / 2], cpu_median = cpu_times[cpu_times.size() / 2];
    auto t = Clock::now();
    std::string back = tokenizer.decode(ids);
    double decode_s = seconds_since(t);

    std::printf("tokenizer load      %.3f s\n", load_s);
    std::printf("input               %.1f MB, %zu tokens (%.2f bytes/token)\n", text.size() / 1e6,
                ids.size(), double(text.size()) / double(ids.size()));
    std::printf("encode (1 thread)   %.1f MB/s, %.2f M tokens/s  (median of %d; best %.1f MB/s)\n",
                text.size() / 1e6 / median, ids.size() / 1e6 / median, runs,
                text.size() / 1e6 / times.front());
    std::printf("encode (CPU time)   %.1f MB/s  (median thread CPU time; immune to other load)\n",
                text.size() / 1e6 / cpu_median);
    std::printf("decode              %.1f MB/s\n", back.size() / 1e6 / decode_s);
    return 0;
  } catch (const qwenvl::Error& e) {
    std::fprintf(stderr, "tokenizer_bench: error: %s\n", e.what());
    return 1;
  }
}
