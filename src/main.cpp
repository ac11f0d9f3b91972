// qwenvl: one binary, several subcommands. Every error arrives here as a qwenvl::Error (or a
// std::bad_alloc) and leaves as one line on stderr with the exit status of its category
// (core/error.h exit_code): 1 bad input, 2 usage, 3 resource limit, 4 device, 5 internal.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "cli/commands.h"
#include "cli/output.h"
#include "core/error.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

const Command kCommands[] = {
    {"generate", qwenvl::cli::run_generate, "image(s) + prompt -> text, streamed"},
    {"inspect", qwenvl::cli::run_inspect, "what a checkpoint holds and the memory it needs"},
    {"serve", qwenvl::cli::run_serve, "an OpenAI-compatible HTTP server (chat completions)"},
    {"plan", qwenvl::cli::run_plan, "where a model's modules go under memory budgets"},
    {"tokenize", qwenvl::cli::run_tokenize, "text or a chat prompt -> token ids"},
    {"preprocess", qwenvl::cli::run_preprocess,
     "image -> pixel_values and grid, as the model sees it"},
    {"quantize", qwenvl::cli::run_quantize, "a 16-bit checkpoint as 4-bit AWQ (test data)"},
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: qwenvl <command> [flags]   (qwenvl <command> --help for its flags)\n\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-11s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      const int status = c.run(argc - 2, argv + 2);
      qwenvl::cli::check_stdout();  // output that never arrived is a failure, whatever the command
      return status;
    } catch (const qwenvl::Error& e) {
      std::fprintf(stderr, "qwenvl %s: %s: %s\n", c.name, qwenvl::error_label(e.kind()), e.what());
      return qwenvl::exit_code(e.kind());
    } catch (const std::bad_alloc&) {
      const auto kind = qwenvl::ErrorKind::ResourceLimit;
      std::fprintf(stderr, "qwenvl %s: %s: out of memory\n", c.name, qwenvl::error_label(kind));
      return qwenvl::exit_code(kind);
    } catch (const std::exception& e) {
      const auto kind = qwenvl::ErrorKind::Internal;
      std::fprintf(stderr, "qwenvl %s: %s: %s\n", c.name, qwenvl::error_label(kind), e.what());
      return qwenvl::exit_code(kind);
    }
  }
  std::fprintf(stderr, "qwenvl: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
