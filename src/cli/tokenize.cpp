// Placeholder until the owner of this subcommand lands it.
#include "cli/commands.h"
#include "core/error.h"

namespace qwenvl::cli {
int run_tokenize(int, char**) { fail("'tokenize' is not built yet"); }
}  // namespace qwenvl::cli
