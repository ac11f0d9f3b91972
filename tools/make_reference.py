#!/usr/bin/env python3
"""Write tests/fixtures/ (layout: docs/FIXTURES.md) from transformers 5 / torch / HF tokenizers.

Run on the GPU machine from the repository root, into a fresh folder holding a copy of
tests/fixtures/tokenizer/tokenizer*.json (so no stale file of an earlier layout is packed):
    python3 tools/make_reference.py --out /tmp/fx [--bench-out $OUT/ref_bench.json]
                                    [--pack $OUT/pack] [--only tokenizer,chat,...]
Sections: tokenizer, tokenizer_bench, chat, images, image_bench, tiny_models, model_refs, pack.
Each section runs on its own: a failure is logged with its traceback and the next one runs; the
summary at the end says which ones failed (exit status 1 if any did).
"""

import argparse
import json
import os
import sys

# The tokenizer benchmark is single-threaded by design: set before `tokenizers` is imported.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tools.reference.common import Summary, log, write_json  # noqa: E402

SECTIONS = ["tokenizer", "tokenizer_bench", "chat", "images", "image_bench", "tiny_models",
            "model_refs", "pack"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures"))
    p.add_argument("--bench-out", default="/tmp/qwenvl_reference_bench.json",
                   help="JSON file for the transformers/tokenizers timings")
    p.add_argument("--pack", default=None, help="directory for the split tar.gz of --out")
    p.add_argument("--only", default=None, help="comma-separated subset of: " + ",".join(SECTIONS))
    p.add_argument("--skip", default="", help="comma-separated sections to skip")
    p.add_argument("--tokenizer-bench-mb", type=float, default=20.0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = os.path.abspath(args.out)
    wanted = args.only.split(",") if args.only else list(SECTIONS)
    wanted = [s for s in wanted if s and s not in args.skip.split(",")]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        print("unknown sections: %s (choose from %s)" % (unknown, SECTIONS), file=sys.stderr)
        return 2
    if "pack" in wanted and not args.pack:
        wanted.remove("pack")
    tokenizer_dir = os.path.join(out, "tokenizer")
    if not os.path.exists(os.path.join(tokenizer_dir, "tokenizer.json")):
        print("missing %s/tokenizer.json (committed with the repository)" % tokenizer_dir,
              file=sys.stderr)
        return 2
    try:
        import torch
        import transformers

        log("torch %s, transformers %s, cuda %s" % (torch.__version__, transformers.__version__,
                                                   torch.cuda.is_available()))
        torch.set_num_threads(min(16, os.cpu_count() or 1))
    except Exception as exc:  # the tokenizer section can still run
        log("torch/transformers not importable: %s" % exc)

    summary = Summary()
    bench = {}
    if "tokenizer" in wanted:
        from tools.reference.tokenizer_ref import write_tokenizer_fixtures

        summary.run("tokenizer", write_tokenizer_fixtures, out)
    if "tokenizer_bench" in wanted:
        from tools.reference.tokenizer_ref import bench_tokenizer

        bench["tokenizer"] = summary.run("tokenizer_bench", bench_tokenizer, out,
                                         args.tokenizer_bench_mb)
    if "chat" in wanted:
        from tools.reference.chat_ref import write_chat_fixtures

        summary.run("chat", write_chat_fixtures, out)
    if "images" in wanted:
        from tools.reference.images_ref import write_image_fixtures

        summary.run("images", write_image_fixtures, out)
    if "image_bench" in wanted:
        from tools.reference.images_ref import bench_image_processors

        bench["image_processor"] = summary.run("image_bench", bench_image_processors,
                                               "/tmp/qwenvl_ref_bench_work")
    models_dir = os.path.join(out, "models")
    if "tiny_models" in wanted:
        from tools.reference.tiny_models import write_tiny_tied, write_tiny_untied

        summary.run("tiny_tied", write_tiny_tied, models_dir, tokenizer_dir)
        summary.run("tiny_untied", write_tiny_untied, models_dir, tokenizer_dir)
    if "model_refs" in wanted:
        from tools.reference.model_cases import write_model_reference

        for name in ("tiny-tied", "tiny-untied"):
            directory = os.path.join(models_dir, name)
            if os.path.isdir(directory):
                summary.run("ref_" + name, write_model_reference, directory, tokenizer_dir)
            else:
                log("model_refs: %s does not exist (build it with the tiny_models section)" % name)
    if bench:
        try:
            write_json(args.bench_out, bench, indent=2)
            log("bench results written to %s" % args.bench_out)
            print(json.dumps(bench, indent=1, default=str), flush=True)
        except Exception as exc:
            log("could not write bench results: %s" % exc)
    try:
        from tools.reference.pack import tree_bytes

        size = tree_bytes(out)
        # The whole repository travels to the GPU machine (at most 64 MiB): fixtures <= 40 MiB.
        log("fixture tree: %.1f MiB%s" % (size / 2**20, "  (WARNING: over the 40 MiB budget)"
                                          if size > 40 * 2**20 else ""))
    except Exception as exc:
        log("could not measure the fixture tree: %s" % exc)
    if "pack" in wanted:
        from tools.reference.pack import pack

        summary.run("pack", pack, out, args.pack)
    summary.print()
    try:
        summary_dir = args.pack or os.path.dirname(os.path.abspath(args.bench_out))
        write_json(os.path.join(summary_dir, "make_reference_summary.json"), summary.rows, indent=2)
    except Exception as exc:
        log("could not write the summary file: %s" % exc)
    return 0 if summary.all_ok() else 1


if __name__ == "__main__":
    sys.exit(main())
