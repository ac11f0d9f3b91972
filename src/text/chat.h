#pragma once
// Qwen2.5-VL's chat template (chat_template.json of the official checkpoints), rendered without
// a template engine: a default system turn, <|im_start|>role\n...<|im_end|>\n turns, each image
// as <|vision_start|><|image_pad|><|vision_end|> and each video as
// <|vision_start|><|video_pad|><|vision_end|> where it stands, and the generation prompt.
#include <cstdint>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace qwenvl {

struct ChatPart {
  enum class Kind { Text, Image, Video } kind = Kind::Text;
  std::string text;  // for Text
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::vector<ChatPart> parts;
};

// The prompt text, exactly as transformers' apply_chat_template(tokenize=False) renders it.
std::string render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

// Prompt ids with each image's single <|image_pad|> expanded to image_pad_counts[i] copies
// (t·h·w / merge² for that image's grid), as the Qwen2.5-VL processor does. Error when the number
// of images differs from image_pad_counts.size().
std::vector<int32_t> chat_prompt_ids(const Tokenizer& tokenizer,
                                     const std::vector<ChatMessage>& messages,
                                     const std::vector<int64_t>& image_pad_counts,
                                     bool add_generation_prompt);

// The same with videos: each video's single <|video_pad|> expanded to video_pad_counts[i] copies
// (t·h·w / merge² of its grid), in the order the videos appear. Error when the counts differ from
// the chat's images or videos.
std::vector<int32_t> chat_prompt_ids(const Tokenizer& tokenizer,
                                     const std::vector<ChatMessage>& messages,
                                     const std::vector<int64_t>& image_pad_counts,
                                     const std::vector<int64_t>& video_pad_counts,
                                     bool add_generation_prompt);

}  // namespace qwenvl
