"""Byte strings that the tokenizer reference (tools/make_reference.py) feeds to HF `tokenizers`.

build_corpus() returns [(name, raw_bytes)], the same list on every run (fixed seed, pure Python 3,
no third-party modules). Each case is chosen to exercise one part of Qwen2's tokenizer pipeline:

- the Split regex: letters/numbers categories, the optional leading non-letter, digit-by-digit
  numbers, punctuation runs with trailing newlines, whitespace runs and the `\\s+(?!\\S)` lookahead,
  case-insensitive contractions (including U+017F LONG S, which folds to 's');
- which characters count as `\\s` (Unicode White_Space vs. Python's str.isspace, e.g. U+001C..1F,
  U+180E, U+200B, U+FEFF);
- NFC normalization (decomposed accents, Hangul jamo, singletons such as U+212B ANGSTROM SIGN);
- added tokens matched before normalization (special and non-special, adjacent, partial);
- invalid UTF-8, which the reference decodes with bytes.decode("utf-8", "replace");
- long words and large mixed texts (BPE cost, caches).

Run it directly to print a summary, or `--dump FILE` to write `name<TAB>hex` lines.
"""

import random
import sys

SEED = 20260525

ENGLISH = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Describe this image in detail, please.",
    "It's a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
    "What's the weather like in San Francisco today? I'd like to know before I'll leave.",
    "Tokenization is the process of splitting text into units called tokens.",
    "e-mail: someone@example.com, URL: https://www.example.org/path?q=1&r=two#frag",
    "Mr. O'Neil's dog--a 3-year-old--didn't bark; it barked!!! (Really?)",
    "  leading spaces and trailing spaces   ",
    "UPPERCASE lowercase MiXeD CaSe camelCase snake_case kebab-case",
    "naïve café résumé coöperate façade jalapeño",
]

CHINESE = [
    "你好，世界！",
    "这张图片里有一只猫坐在窗台上，阳光照在它的身上。",
    "通义千问是阿里巴巴开发的大语言模型。",
    "请描述这幅图像的内容，并用三句话总结。",
    "我爱北京天安门，天安门上太阳升。",
    "中文标点：「引号」『书名号』《书名》——破折号……省略号",
    "繁體中文與簡體中文的區別在於字形。",
]

JAPANESE = [
    "こんにちは、世界！",
    "今日はいい天気ですね。散歩に行きましょう。",
    "カタカナとひらがなと漢字が混ざった文章です。",
    "ｶﾞｷﾞｸﾞ半角カナ　全角スペース",
    "東京スカイツリーの高さは634メートルです。",
]

KOREAN = [
    "안녕하세요, 세계!",
    "이 사진에는 고양이가 창가에 앉아 있습니다.",
    "한국어 형태소 분석은 어렵습니다.",
]

OTHER_SCRIPTS = [
    ("arabic", "مرحبا بالعالم! هذه جملة باللغة العربية مع أرقام ١٢٣٤٥٦٧٨٩٠."),
    ("arabic_diacritics", "بِسْمِ اللَّهِ الرَّحْمَٰنِ الرَّحِيمِ"),
    ("hebrew", "שלום עולם, זה משפט בעברית."),
    ("hindi", "नमस्ते दुनिया! यह हिंदी में एक वाक्य है। संख्याएँ: ०१२३४५६७८९"),
    ("bengali", "আমি বাংলায় গান গাই।"),
    ("tamil", "வணக்கம் உலகம்"),
    ("thai", "สวัสดีชาวโลก ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ"),
    ("lao_khmer", "ສະບາຍດີ សួស្តី"),
    ("russian", "Привет, мир! Съешь же ещё этих мягких французских булок, да выпей чаю."),
    ("ukrainian", "Ґалаґан їсть іжу; Євген і Ї."),
    ("greek", "Καλημέρα κόσμε! Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. ΣΊΣΥΦΟΣ"),
    ("vietnamese", "Tiếng Việt có dấu: Trăm năm trong cõi người ta."),
    ("german", "Größe, Übermäßig, Straße, ẞ, Fußgängerübergänge"),
    ("turkish", "İstanbul'da ılık bir gün; IĞDIR ığdır"),
    ("armenian_georgian", "Բարեւ աշխարհ გამარჯობა მსოფლიო"),
    ("ethiopic", "ሰላም ለዓለም"),
    ("mongolian", "ᠮᠣᠩᠭᠣᠯ\u180eᠪᠢᠴᠢᠭ"),
    ("math", "∀x∈ℝ: x²≥0, ∑ᵢ aᵢ = ∫₀¹ f(x) dx ≈ π/4 ≠ ∞ ⊂ ⊆ ⊕ ℵ₀"),
    ("fullwidth", "ＡＢＣ１２３！？ｈｅｌｌｏ"),
    ("superscripts", "x² y³ ½ ¼ ⅓ Ⅻ ⑩ ⒈ ㊿"),
]

EMOJI = [
    "😀", "😂", "🥲", "❤️", "❤", "✨", "🔥", "👍", "👍🏻", "👍🏽", "👍🏿", "👋🏼",
    "👨‍👩‍👧‍👦", "👩‍❤️‍💋‍👨", "🧑🏾‍💻", "👩🏻‍🔬", "🏳️‍🌈", "🏴‍☠️", "🐻‍❄️", "❤️‍🔥",
    "🇯🇵", "🇺🇸", "🇨🇳", "🇩🇪🇫🇷", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "1️⃣", "#️⃣", "*️⃣", "©️", "™",
    "🫠", "🫶🏽", "🤌", "🦀", "🐍", "🀄", "🂡", "𝕳𝖊𝖑𝖑𝖔", "𝒜𝒷𝒸", "🅰️",
]

CODE = [
    ("python_def", "def fib(n: int) -> int:\n    if n < 2:\n        return n\n"
     "    return fib(n - 1) + fib(n - 2)\n\n\nprint([fib(i) for i in range(10)])\n"),
    ("python_class", "class Foo(Base):\n\t\"\"\"Docstring.\"\"\"\n\tdef __init__(self, x=1, *a, **kw):\n"
     "\t\tsuper().__init__()\n\t\tself._x = x  # comment\n\n\t@property\n\tdef x(self):\n"
     "\t\treturn self._x ** 2 // 3 % 7\n"),
    ("cpp_template", "#include <vector>\n\ntemplate <typename T>\nstd::vector<T> twice(const "
     "std::vector<T>& v) {\n  std::vector<T> out;\n  out.reserve(v.size() * 2);\n  for (auto& x : "
     "v) { out.push_back(x); out.push_back(x); }\n  return out;\n}\n"),
    ("cpp_ops", "a->b; c::d; e<<=f; g>>=h; i&&j||!k; l!=m; n<=>o; p++; --q; r ? s : t; /* x */ // y"),
    ("json", "{\"name\": \"qwen\", \"ids\": [1, 22, 333], \"nested\": {\"a\": null, \"b\": true, "
     "\"c\": -1.5e-10}, \"text\": \"line\\nbreak \\u00e9\"}"),
    ("json_pretty", "{\n  \"model_type\": \"qwen2_5_vl\",\n  \"hidden_size\": 3584,\n  \"rope_scaling\": "
     "{\n    \"type\": \"mrope\",\n    \"mrope_section\": [\n      16,\n      24,\n      24\n    ]\n  }\n}"),
    ("html", "<!DOCTYPE html>\n<html><body><div class=\"a b\">Hi &amp; bye &lt;3</div></body></html>"),
    ("shell", "for f in *.txt; do\n  echo \"$f\" | sed -e 's/a/b/g' >> out.log 2>&1\ndone\n"),
    ("markdown", "# Title\n\n## Sub-title\n\n- item **bold** _it_ `code`\n- [link](http://x.y)\n\n"
     "```python\nprint('hi')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"),
    ("latex", "\\begin{equation}\n  E = mc^2 \\quad \\frac{\\partial u}{\\partial t} = \\alpha "
     "\\nabla^2 u\n\\end{equation}"),
    ("regex_like", "(?i:'s|'t)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\s+(?!\\S)"),
    ("sql", "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%an%' ORDER BY id DESC;"),
    ("rust", "fn main() {\n    let v: Vec<u8> = (0..10).map(|x| x * 2).collect();\n    "
     "println!(\"{:?}\", v);\n}\n"),
    ("minified_js", "function(a,b){return a+b};var x=[1,2,3].map(e=>e*2);if(x){console.log(x)}"),
]

NUMBERS = [
    "0", "7", "42", "123", "1234", "12345678901234567890", "3.14159265358979323846",
    "1,000,000", "1.000.000,50", "-273.15", "+1 (555) 123-4567", "2024-01-31T23:59:59Z",
    "0x7FFF_FFFF", "1e-9", "6.022e23", "v1.2.3-rc.4", "１２３", "٣٤٥", "४२", "⑧", "Ⅷ", "½",
    "9" * 200, "1234567890" * 30, "3.0.0.0.0.0", "$1,234.56", "€99,99", "¥10000", "100%",
    "IPv4 192.168.0.1:8080",
]

CONTRACTIONS = [
    "don't", "DON'T", "Don'T", "it's", "it'S", "IT'S", "we're", "WE'RE", "we'Re", "they've",
    "THEY'VE", "I'm", "I'M", "I'll", "I'LL", "I'Ll", "she'd", "SHE'D", "'s", "'S", "'re", "'ll",
    "'d", "'m", "'t", "'ve", "''s", "'''", "'s's's", "x'sy", "rock'n'roll", "o'clock",
    "it’s (curly apostrophe)", "l'amour l'été", "'Twas", "' s", "'\ns", "'1", "'ſ", "it'ſ",
    "IT'ſ", "'ſt", "'K", "'\u212a", "'ﬅ", "'ǅ", "we'rE", "'RE'VE'LL",
]

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
]

# Characters around the edge of `\s`: White_Space ones (what the Rust/Oniguruma `\s` matches) and
# look-alikes that are not White_Space but that Python's str.isspace() or others may treat as such.
WHITESPACE = [
    " ", "  ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x85", "\xa0", "\u1680", "\u2000",
    "\u2002", "\u2003", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
]
NOT_WHITESPACE = ["\x1c", "\x1d", "\x1e", "\x1f", "\u180e", "\u200b", "\u200c", "\u200d",
                  "\u2060", "\ufeff", "\x00", "\x07", "\x7f"]

# Strings whose NFC differs from their input.
NFC_CASES = [
    ("decomposed_e_acute", "e\u0301cole caf\u00e9 cafe\u0301"),
    ("decomposed_stack", "a\u0323\u0302 q\u0307\u0323 o\u0308\u0304"),
    ("hangul_jamo", "\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af"),
    ("hangul_jamo_lv_t", "\uac00\u11a8 \u1100\u1161"),
    ("angstrom_ohm_kelvin", "\u212b \u2126 \u212a \u1e9b\u0323"),
    ("cjk_compat", "\uf900\uf901 \u2f00"),
    ("combining_order", "a\u0301\u0316 a\u0316\u0301 \u0041\u030a\u0327"),
    ("devanagari_nukta", "\u0915\u093c \u0958"),
    ("greek_tonos", "\u03b1\u0301 \u1f71 \u0387 \u037e"),
    ("combining_alone", "\u0301\u0301x \u0301 \u20dd"),
    ("vietnamese_nfd", "Vie\u0302\u0323t Nam ti\u00ea\u0301ng"),
    ("hebrew_points", "\u05e9\u05c1\u05bc \u05e9\u05bc\u05c1"),
]

INVALID_UTF8 = [
    ("lone_continuation", b"abc\x80def"),
    ("continuation_run", b"\x80\x81\x82\xbf"),
    ("truncated_2", b"ab\xc3"),
    ("truncated_3", b"\xe4\xb8 x"),
    ("truncated_3_end", b"x\xe4\xb8"),
    ("truncated_4", b"\xf0\x9f\x98 ok"),
    ("truncated_4_end", b"ok \xf0\x9f\x98"),
    ("overlong_slash", b"\xc0\xaf"),
    ("overlong_nul", b"\xc0\x80"),
    ("overlong_3", b"\xe0\x80\xaf"),
    ("overlong_4", b"\xf0\x80\x80\xaf"),
    ("surrogate_high", b"\xed\xa0\x80"),
    ("surrogate_pair", b"\xed\xa0\xbd\xed\xb8\x80"),
    ("above_max", b"\xf4\x90\x80\x80"),
    ("f5_ff", b"\xf5\xf8\xfc\xfe\xff"),
    ("byte_ff", b"hello\xffworld"),
    ("byte_fe_ff", b"\xfe\xff\xfe"),
    ("c1_c2", b"\xc1\xbf\xc2\x80"),
    ("mixed_valid_invalid", "你好".encode() + b"\xe4" + "世界".encode() + b"\x80\xff"),
    ("invalid_in_space_run", b"  \x80  \n\xff\n"),
    ("invalid_after_apostrophe", b"'\xffs it'\x80s"),
    ("invalid_before_special", b"\xe4<|im_end|>\xb8"),
    ("invalid_inside_special", b"<|im_\xffend|>"),
    ("emoji_broken", "👍".encode()[:3] + "🏽".encode()),
    ("all_bytes", bytes(range(256))),
    ("high_bytes_only", bytes(range(128, 256))),
]


def special_token_cases():
    cases = []
    for i, tok in enumerate(SPECIAL_TOKENS):
        cases.append((f"special_alone_{i}", tok))
        cases.append((f"special_in_text_{i}", f"before {tok} after"))
        cases.append((f"special_glued_{i}", f"x{tok}y"))
    cases += [
        ("special_adjacent", "<|im_start|><|im_end|><|endoftext|>"),
        ("special_chat", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
         "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe.<|im_end|>\n"
         "<|im_start|>assistant\n"),
        ("special_pad_run", "<|image_pad|>" * 64),
        ("special_partial", "<|im_start| <|im_end <im_start|> <|imstart|> |>"),
        ("special_nested", "<|<|im_end|>|>"),
        ("special_case", "<|IM_END|> <|Im_End|>"),
        ("special_spaces", "  <|im_end|>  \n<|im_end|>\n\n"),
        ("think_block", "<think>\nLet me think.\n</think>\n\nThe answer is 4."),
        ("tool_call", "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>"),
        ("special_nfd_neighbours", "e\u0301<|im_end|>\u0301e"),
        ("special_in_cjk", "你<|endoftext|>好"),
        ("special_after_apostrophe", "'<|im_end|>s"),
    ]
    return cases


def whitespace_cases():
    cases = []
    for i, ws in enumerate(WHITESPACE):
        cases.append((f"ws_{i}_between", f"a{ws}b"))
        cases.append((f"ws_{i}_run_before_word", f"a{ws * 3}b"))
        cases.append((f"ws_{i}_trailing", f"word{ws * 2}"))
        cases.append((f"ws_{i}_before_punct", f"x{ws}{ws}!"))
        cases.append((f"ws_{i}_before_newline", f"x{ws}\n{ws}y"))
    for i, ch in enumerate(NOT_WHITESPACE):
        cases.append((f"notws_{i}_between", f"a{ch}b"))
        cases.append((f"notws_{i}_with_spaces", f"a {ch} b{ch}{ch} 1"))
    cases += [
        ("spaces_1_to_20", "|".join(" " * n for n in range(1, 21))),
        ("space_run_then_word", "a          b"),
        ("space_run_end", "end          "),
        ("newlines_run", "a\n\n\n\nb"),
        ("crlf_runs", "a\r\n\r\nb\r\n  c  \r\n"),
        ("cr_only", "a\rb\r\rc"),
        ("tabs_mixed", "\t\tindented\n\t  \tmixed \t\n"),
        ("spaces_newline_spaces", "a   \n   b"),
        ("punct_newlines", "end.\n\n\nnext!!\r\n\r\n?"),
        ("space_punct_newline", " ...\n"),
        ("only_spaces", "     "),
        ("only_newlines", "\n\n\n"),
        ("nbsp_runs", "a\xa0\xa0 b \xa0c"),
        ("ideographic_space", "日本\u3000語\u3000\u3000です"),
        ("empty", ""),
        ("single_space", " "),
        ("single_newline", "\n"),
    ]
    return cases


def contraction_cases():
    cases = []
    for i, c in enumerate(CONTRACTIONS):
        cases.append((f"contraction_{i}", c))
        cases.append((f"contraction_{i}_in_sentence", f"Well, {c} fine"))
    return cases


def fixed_cases():
    cases = []
    for i, s in enumerate(ENGLISH):
        cases.append((f"english_{i}", s))
    for lang, texts in (("chinese", CHINESE), ("japanese", JAPANESE), ("korean", KOREAN)):
        for i, s in enumerate(texts):
            cases.append((f"{lang}_{i}", s))
    for name, s in OTHER_SCRIPTS:
        cases.append((name, s))
    for i, e in enumerate(EMOJI):
        cases.append((f"emoji_{i}", e))
        cases.append((f"emoji_{i}_in_text", f"I like this {e}{e} a lot!{e}"))
    cases.append(("emoji_all", " ".join(EMOJI)))
    cases.append(("emoji_all_glued", "".join(EMOJI)))
    for name, s in CODE:
        cases.append((f"code_{name}", s))
    for i, s in enumerate(NUMBERS):
        cases.append((f"number_{i}", s))
        cases.append((f"number_{i}_in_text", f"about {s}items, {s}."))
    for name, s in NFC_CASES:
        cases.append((f"nfc_{name}", s))
    cases += [
        ("long_word_latin", "supercalifragilisticexpialidocious" * 20),
        ("long_word_random_letters", "qzxjvkwpyfgbmhd" * 40),
        ("long_word_cjk", "龘靐齉爩" * 100),
        ("long_word_no_merge", "".join(chr(0x1E00 + i) for i in range(200))),
        ("long_punct_run", "!?.,;:-_=+*/\\|@#$%^&~`" * 20),
        ("long_digits", "0123456789" * 100),
        ("long_spaces", " " * 1000 + "x"),
        ("long_newlines", "\n" * 500),
        ("repeated_a", "a" * 5000),
        ("repeated_space_a", " a" * 2000),
        ("url_long", "https://example.com/" + "/".join(f"seg{i}" for i in range(100))),
        ("base64_blob", "QWxhZGRpbjpvcGVuIHNlc2FtZQ==" * 30),
    ]
    return cases


def random_codepoint_cases(rng):
    # Blocks assigned since Unicode 6 or earlier, so the Unicode versions of Oniguruma, the Rust
    # unicode-normalization crate and utf8proc all agree on their categories.
    blocks = [
        (0x20, 0x7E), (0xA0, 0x24F), (0x250, 0x2FF), (0x300, 0x36F), (0x370, 0x3FF),
        (0x400, 0x4FF), (0x530, 0x58F), (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F),
        (0x980, 0x9FF), (0xE00, 0xE7F), (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1E00, 0x1EFF),
        (0x1F00, 0x1FFF), (0x2000, 0x206F), (0x2070, 0x209F), (0x20A0, 0x20BF), (0x2100, 0x214F),
        (0x2150, 0x218F), (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2460, 0x24FF), (0x2500, 0x257F),
        (0x3000, 0x303F), (0x3040, 0x309F), (0x30A0, 0x30FF), (0x3130, 0x318F), (0x4E00, 0x9FCC),
        (0xAC00, 0xD7A3), (0xF900, 0xFA2D), (0xFB00, 0xFB4F), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF),
        (0x1D400, 0x1D7FF), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6C5),
        (0x20000, 0x2A6D6),
    ]
    cases = []
    for i in range(300):
        n = rng.randint(1, 40)
        chars = []
        for _ in range(n):
            lo, hi = rng.choice(blocks)
            chars.append(chr(rng.randint(lo, hi)))
        cases.append((f"random_codepoints_{i}", "".join(chars)))
    return cases


def fragment_pool():
    pool = []
    pool += [w for s in ENGLISH for w in s.split(" ")]
    pool += CHINESE + JAPANESE + KOREAN
    pool += [s for _, s in OTHER_SCRIPTS]
    pool += EMOJI + NUMBERS[:30] + CONTRACTIONS + SPECIAL_TOKENS
    pool += [s for _, s in NFC_CASES]
    pool += [s[:60] for _, s in CODE]
    pool += ["", ".", ",", "!", "?", "...", "'", "\"", "(", ")", "-", "--", "'s", "’", "«»", "%",
             "#", "@", "$", "_", "~", "^", "\\", "/", "|", "&", "*", "+", "="]
    return pool


def random_mix_cases(rng):
    pool = fragment_pool()
    separators = WHITESPACE + NOT_WHITESPACE[:6] + ["", "", " ", " ", " ", "\n\n", " \n", "\t\n"]
    invalid = [b for _, b in INVALID_UTF8[:22]]
    cases = []
    for i in range(1200):
        parts = []
        for j in range(rng.randint(1, 10)):
            if j:
                parts.append(rng.choice(separators).encode())
            if rng.random() < 0.04:
                parts.append(rng.choice(invalid))
            else:
                parts.append(rng.choice(pool).encode())
        cases.append((f"random_mix_{i}", b"".join(parts)))
    return cases


def random_ascii_cases(rng):
    # Dense ASCII noise: the regex branches interact most around punctuation, digits and spaces.
    alphabet = "aAbZz09 '\t\n\r!?.,-_(){}[]<>|sStTdDmMlLvVeErR"
    cases = []
    for i in range(300):
        n = rng.randint(1, 60)
        cases.append((f"random_ascii_{i}", "".join(rng.choice(alphabet) for _ in range(n))))
    return cases


def random_bytes_cases(rng):
    cases = []
    for i in range(100):
        n = rng.randint(1, 50)
        # Bias towards bytes that start or continue UTF-8 sequences so partial sequences abound.
        cases.append((f"random_bytes_{i}", bytes(rng.choice([rng.randint(0, 255),
                                                             rng.randint(0x80, 0xBF),
                                                             rng.randint(0xC0, 0xF7),
                                                             rng.randint(0x20, 0x7E)])
                                                 for _ in range(n))))
    return cases


def large_cases(rng):
    pieces = ([s for s in ENGLISH] + CHINESE + JAPANESE + KOREAN + [s for _, s in OTHER_SCRIPTS] +
              [s for _, s in CODE] + EMOJI + NUMBERS + SPECIAL_TOKENS[:4] + ["\n\n", "\r\n", "\t"])
    cases = []
    for i in range(6):
        out, size = [], 0
        while size < 20000:
            p = rng.choice(pieces)
            out.append(p)
            out.append(rng.choice([" ", "\n", "", "  ", "\n\n"]))
            size += len(p.encode()) + 1
        cases.append((f"large_mix_{i}", "".join(out)))
    cases.append(("large_english", " ".join(ENGLISH) * 60))
    cases.append(("large_chinese", "".join(CHINESE) * 100))
    cases.append(("large_code", "\n".join(s for _, s in CODE) * 12))
    return cases


def build_corpus():
    """[(name, raw_bytes)]: deterministic; names are unique; bytes may be invalid UTF-8."""
    rng = random.Random(SEED)
    cases = []
    cases += fixed_cases()
    cases += special_token_cases()
    cases += whitespace_cases()
    cases += contraction_cases()
    cases += list(INVALID_UTF8)
    cases += random_codepoint_cases(rng)
    cases += random_mix_cases(rng)
    cases += random_ascii_cases(rng)
    cases += random_bytes_cases(rng)
    cases += large_cases(rng)
    out, seen = [], set()
    for name, value in cases:
        if name in seen:
            raise ValueError(f"duplicate corpus case name {name}")
        seen.add(name)
        out.append((name, value if isinstance(value, bytes) else value.encode("utf-8")))
    return out


def main(argv):
    corpus = build_corpus()
    if len(argv) == 3 and argv[1] == "--dump":
        with open(argv[2], "w", encoding="ascii") as f:
            for name, data in corpus:
                f.write(f"{name}\t{data.hex()}\n")
    total = sum(len(b) for _, b in corpus)
    invalid = 0
    for _, b in corpus:
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            invalid += 1
    print(f"{len(corpus)} cases, {total} bytes, {invalid} with invalid UTF-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
