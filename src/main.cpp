// qwenvl: one binary, several subcommands. Errors a user can cause arrive here as qwenvl::Error
// and leave as one line on stderr with exit code 1.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "cli/commands.h"
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
    {"tokenize", qwenvl::cli::run_tokenize, "text or a chat prompt -> token ids"},
    {"preprocess", qwenvl::cli::run_preprocess, "image -> pixel_values and grid, as the model sees it"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: qwenvl <command> [flags]   (qwenvl <command> --help for its flags)\n\n");
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
      return c.run(argc - 2, argv + 2);
    } catch (const qwenvl::Error& e) {
      std::fprintf(stderr, "qwenvl %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "qwenvl %s: error: out of memory\n", c.name);
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "qwenvl %s: internal error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "qwenvl: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
