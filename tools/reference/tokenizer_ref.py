"""Section 1: HF `tokenizers` encode/decode fixtures and a single-threaded encode benchmark."""

import os
import random
import time

from tools.reference.common import b64, log, write_jsonl


def _bytes_to_unicode():
    """GPT-2 byte-level alphabet: byte value -> the printable char the vocabulary uses for it."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def load_tokenizer(tokenizer_json):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(tokenizer_json)


def _corpus():
    from tools.reference.tokenizer_corpus import build_corpus

    corpus = build_corpus()
    out = []
    for item in corpus:
        name, raw = item[0], item[1]
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        out.append((str(name), bytes(raw)))
    return out


def _decode_cases(tok, corpus_ids, rng):
    """~200 id lists: corpus slices, random ids, special tokens, lone bytes of multi-byte chars."""
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    byte_char = _bytes_to_unicode()
    byte_ids = {}
    for b in range(256):
        tid = tok.token_to_id(byte_char[b])
        if tid is not None:
            byte_ids[b] = tid
    specials = [tid for tid in range(151643, vocab_size)]
    cases = []
    nonempty = [ids for ids in corpus_ids if ids]
    for _ in range(90):
        ids = rng.choice(nonempty)
        a = rng.randrange(len(ids))
        b = min(len(ids), a + rng.randint(1, 40))
        cases.append(ids[a:b])
    for _ in range(40):
        cases.append([rng.randrange(vocab_size) for _ in range(rng.randint(1, 24))])
    for _ in range(15):
        seq = [rng.randrange(151643) for _ in range(rng.randint(0, 6))]
        seq.insert(rng.randrange(len(seq) + 1), rng.choice(specials))
        cases.append(seq)
    # Split UTF-8 characters: lead bytes alone, continuation bytes alone, truncated sequences.
    for text in ["日本語", "é", "🙂", "Ωmega", "한국어", "𝔘𝔫𝔦"]:
        raw = text.encode("utf-8")
        singles = [byte_ids[b] for b in raw if b in byte_ids]
        if singles:
            cases.append(singles)           # all bytes as single-byte tokens: valid again
            cases.append(singles[:-1])      # truncated: the tail is invalid
            cases.append(singles[1:])       # starts with continuation bytes
            cases.append(singles[:1] + [tok.token_to_id("a") or 64] + singles[1:])
    for _ in range(25):
        lone = [byte_ids[b] for b in (rng.randrange(0x80, 0x100) for _ in range(rng.randint(1, 5)))
                if b in byte_ids]
        ascii_ids = [rng.randrange(20, 5000) for _ in range(rng.randint(0, 3))]
        cases.append(ascii_ids + lone + ascii_ids[::-1])
    cases.append([])
    return cases


def write_tokenizer_fixtures(out_dir):
    tok_json = os.path.join(out_dir, "tokenizer", "tokenizer.json")
    tok = load_tokenizer(tok_json)
    corpus = _corpus()
    rows = []
    corpus_ids = []
    for name, raw in corpus:
        ids = tok.encode(raw.decode("utf-8", "replace"), add_special_tokens=False).ids
        corpus_ids.append(ids)
        rows.append({"name": name, "utf8_b64": b64(raw), "ids": ids})
    write_jsonl(os.path.join(out_dir, "tokenizer", "corpus.jsonl"), rows)
    log("tokenizer: %d corpus cases, %d ids" % (len(rows), sum(len(i) for i in corpus_ids)))

    rng = random.Random(1234)
    decode_rows = []
    for ids in _decode_cases(tok, corpus_ids, rng):
        text = tok.decode(ids, skip_special_tokens=False)
        decode_rows.append({"ids": ids, "text_b64": b64(text.encode("utf-8"))})
    write_jsonl(os.path.join(out_dir, "tokenizer", "decode.jsonl"), decode_rows)
    log("tokenizer: %d decode cases" % len(decode_rows))
    return {"corpus_cases": len(rows), "decode_cases": len(decode_rows)}


def bench_tokenizer(out_dir, target_mb=20.0, repeats=3):
    """Single-threaded HF encode throughput, two ways over the same corpus texts:
    `per_text`: each corpus text encoded on its own, the corpus repeated to ~target_mb (how an
    engine meets prompts; bench/tokenizer/tokenizer_bench.cpp does exactly this), and
    `one_string`: all texts joined into one ~2 MB string (HF's cost grows with string length)."""
    tok = load_tokenizer(os.path.join(out_dir, "tokenizer", "tokenizer.json"))
    texts = [raw.decode("utf-8", "replace") for _, raw in _corpus()]
    unit_bytes = sum(len(t.encode("utf-8")) for t in texts)
    if unit_bytes == 0:
        raise RuntimeError("the tokenizer corpus is empty")

    def best_of(fn):
        times, n_ids = [], 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            n_ids = fn()
            times.append(time.perf_counter() - t0)
            if sum(times) > 30.0:  # the whole reference run has one 10-minute device call
                break
        return min(times), n_ids, times

    copies = max(1, int(target_mb * 1e6 // unit_bytes))
    per_text_bytes = unit_bytes * copies
    best, n_ids, times = best_of(lambda: sum(
        len(tok.encode(t, add_special_tokens=False).ids) for _ in range(copies) for t in texts))
    one = "".join(texts) * max(1, int(2e6 // unit_bytes))
    one_bytes = len(one.encode("utf-8"))
    one_best, one_ids, one_times = best_of(lambda: len(tok.encode(one, add_special_tokens=False).ids))
    result = {
        "what": "HF tokenizers encode, add_special_tokens=False, single thread",
        "threads": os.environ.get("RAYON_NUM_THREADS", "unset"),
        "per_text": {"bytes": per_text_bytes, "tokens": n_ids, "copies_of_corpus": copies,
                     "seconds": times, "mb_per_s": per_text_bytes / best / 1e6,
                     "tokens_per_s": n_ids / best},
        "one_string": {"bytes": one_bytes, "tokens": one_ids, "seconds": one_times,
                       "mb_per_s": one_bytes / one_best / 1e6},
    }
    log("tokenizer bench: per text %.1f MB at %.2f MB/s; one %.1f MB string at %.2f MB/s" %
        (per_text_bytes / 1e6, per_text_bytes / best / 1e6, one_bytes / 1e6, one_bytes / one_best / 1e6))
    return result
