"""Build transformers' Qwen2.5-VL processor from our tokenizer files and the official template."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
CHAT_TEMPLATE_PATH = os.path.join(HERE, "qwen2_5_vl_chat_template.jinja")

# Official Qwen2.5-VL preprocessor_config.json (Qwen/Qwen2.5-VL-3B/7B-Instruct).
PREPROCESSOR_CONFIG = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
}

# Official Qwen/Qwen2.5-VL-7B-Instruct generation_config.json.
GENERATION_CONFIG = {
    "bos_token_id": 151643,
    "pad_token_id": 151643,
    "do_sample": True,
    "eos_token_id": [151645, 151643],
    "repetition_penalty": 1.05,
    "temperature": 1e-06,
    "transformers_version": "4.49.0",
}

_TOKENIZER_CACHE = {}
_PROCESSOR_CACHE = {}


def chat_template():
    with open(CHAT_TEMPLATE_PATH, encoding="utf-8") as f:
        return f.read()


def load_hf_tokenizer(tokenizer_dir):
    """transformers tokenizer over tokenizer.json (+ tokenizer_config.json) in tokenizer_dir."""
    if tokenizer_dir in _TOKENIZER_CACHE:
        return _TOKENIZER_CACHE[tokenizer_dir]
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    except Exception:
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast(
            tokenizer_file=os.path.join(tokenizer_dir, "tokenizer.json"),
            eos_token="<|im_end|>", pad_token="<|endoftext|>")
    _TOKENIZER_CACHE[tokenizer_dir] = tok
    return tok


def pil_image_processor(min_pixels, max_pixels):
    """The PIL backend (numpy + PIL bicubic): what qwenvl reproduces exactly."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": int(min_pixels), "longest_edge": int(max_pixels)},
        patch_size=14, temporal_patch_size=2, merge_size=2)


def default_image_processor(min_pixels, max_pixels):
    """transformers' default Qwen2-VL image processor class (torchvision backend in v5)."""
    from transformers import Qwen2VLImageProcessor

    return Qwen2VLImageProcessor(
        size={"shortest_edge": int(min_pixels), "longest_edge": int(max_pixels)},
        patch_size=14, temporal_patch_size=2, merge_size=2)


def build_processor(tokenizer_dir, min_pixels=3136, max_pixels=12845056):
    key = (tokenizer_dir, int(min_pixels), int(max_pixels))
    if key in _PROCESSOR_CACHE:
        return _PROCESSOR_CACHE[key]
    from transformers import Qwen2_5_VLProcessor

    tok = load_hf_tokenizer(tokenizer_dir)
    ip = pil_image_processor(min_pixels, max_pixels)
    try:
        proc = Qwen2_5_VLProcessor(image_processor=ip, tokenizer=tok, video_processor=None,
                                   chat_template=chat_template())
    except Exception:
        from transformers import Qwen2VLVideoProcessor

        proc = Qwen2_5_VLProcessor(image_processor=ip, tokenizer=tok,
                                   video_processor=Qwen2VLVideoProcessor(),
                                   chat_template=chat_template())
    _PROCESSOR_CACHE[key] = proc
    return proc


def render_chat(processor, messages):
    try:
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:
        # Same template through the tokenizer's renderer (no image loading involved).
        from tools.reference.common import log

        log("processor.apply_chat_template failed (%s); rendering via the tokenizer" % exc)
        text = processor.tokenizer.apply_chat_template(
            messages, chat_template=chat_template(), add_generation_prompt=True, tokenize=False)
    if isinstance(text, (list, tuple)):
        text = text[0]
    return text


def run_processor(processor, text, images):
    """processor(text=[text], images=...) as torch tensors; images may be empty."""
    kwargs = {"text": [text], "return_tensors": "pt"}
    if images:
        kwargs["images"] = list(images)
    return processor(**kwargs)


def render_chat_independently(messages):
    """Our own reading of the official template, to cross-check transformers' rendering."""
    out = []
    for i, msg in enumerate(messages):
        if i == 0 and msg["role"] != "system":
            out.append("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
        out.append("<|im_start|>%s\n" % msg["role"])
        content = msg["content"]
        if isinstance(content, str):
            out.append(content + "<|im_end|>\n")
            continue
        for item in content:
            if item.get("type") == "image" or "image" in item or "image_url" in item:
                out.append("<|vision_start|><|image_pad|><|vision_end|>")
            elif "text" in item:
                out.append(item["text"])
        out.append("<|im_end|>\n")
    out.append("<|im_start|>assistant\n")
    return "".join(out)
