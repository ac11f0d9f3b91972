#pragma once
// The subcommands of the `qwenvl` binary. Each takes the arguments after its name and returns the
// process exit code; an Error thrown out of one is printed as one line by main.
namespace qwenvl::cli {

int run_inspect(int argc, char** argv);     // checkpoint summary (cli/inspect.cpp)
int run_tokenize(int argc, char** argv);    // text -> ids / chat prompt ids (cli/tokenize.cpp)
int run_preprocess(int argc, char** argv);  // image -> pixel_values, grid (cli/preprocess.cpp)
int run_generate(int argc, char** argv);    // image + prompt -> text (cli/generate.cpp)
int run_plan(int argc, char** argv);        // memory plan from config.json (cli/plan.cpp)
int run_quantize(int argc, char** argv);    // 16-bit checkpoint -> AWQ (cli/quantize.cpp)
int run_serve(int argc, char** argv);       // OpenAI-compatible HTTP server (cli/serve.cpp)

}  // namespace qwenvl::cli
