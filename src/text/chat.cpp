// Qwen2.5-VL's chat template (chat_template.json of Qwen/Qwen2.5-VL-*-Instruct), which reads:
//   {% for message in messages %}
//     {% if loop.first and message['role'] != 'system' %}
//       <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}
//     <|im_start|>{{ message['role'] }}\n
//     {% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n
//     {% else %}{% for content in message['content'] %}
//       image -> <|vision_start|><|image_pad|><|vision_end|>
//       video -> <|vision_start|><|video_pad|><|vision_end|>
//       text  -> {{ content['text'] }}
//     {% endfor %}<|im_end|>\n{% endif %}
//   {% endfor %}
//   {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}
// (add_vision_id, which would prefix "Picture N: ", is off unless a caller asks, and we never do.)
#include "text/chat.h"

#include "core/error.h"

namespace qwenvl {

namespace {
constexpr const char* kDefaultSystem = "You are a helpful assistant.";
constexpr const char* kImage = "<|vision_start|><|image_pad|><|vision_end|>";
constexpr const char* kVideo = "<|vision_start|><|video_pad|><|vision_end|>";
constexpr const char* kImagePad = "<|image_pad|>";
}  // namespace

std::string render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  for (size_t m = 0; m < messages.size(); ++m) {
    const ChatMessage& message = messages[m];
    if (m == 0 && message.role != "system")
      out += cat("<|im_start|>system\n", kDefaultSystem, "<|im_end|>\n");
    out += "<|im_start|>" + message.role + "\n";
    for (const ChatPart& part : message.parts) {
      switch (part.kind) {
        case ChatPart::Kind::Text:
          out += part.text;
          break;
        case ChatPart::Kind::Image:
          out += kImage;
          break;
        case ChatPart::Kind::Video:
          out += kVideo;
          break;
      }
    }
    out += "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

std::vector<int32_t> chat_prompt_ids(const Tokenizer& tokenizer,
                                     const std::vector<ChatMessage>& messages,
                                     const std::vector<int64_t>& image_pad_counts,
                                     bool add_generation_prompt) {
  size_t images = 0;
  for (const ChatMessage& message : messages)
    for (const ChatPart& part : message.parts) images += part.kind == ChatPart::Kind::Image;
  if (images != image_pad_counts.size())
    fail("the chat has ", images, " image(s) but ", image_pad_counts.size(),
         " image token count(s) were given");
  for (int64_t count : image_pad_counts)
    if (count <= 0) fail("an image must take at least one token, got ", count);

  const int32_t pad = tokenizer.token_id(kImagePad);
  std::vector<int32_t> ids = tokenizer.encode(render_chat(messages, add_generation_prompt));
  // The processor (Qwen2_5_VLProcessor.__call__) repeats each <|image_pad|> of the text, image
  // by image, before tokenizing; a pad is a special token matched before everything else, so
  // repeating its id after tokenizing gives the same ids. A pad typed inside a message's text
  // counts as an image there too, so it must be matched by a count.
  size_t pads = 0;
  for (int32_t id : ids) pads += id == pad;
  if (pads != image_pad_counts.size())
    fail("the chat text holds ", pads, " <|image_pad|> token(s) for ", image_pad_counts.size(),
         " image(s); remove literal \"<|image_pad|>\" from message text");
  int64_t extra = 0;
  for (int64_t count : image_pad_counts) extra += count - 1;
  std::vector<int32_t> expanded;
  expanded.reserve(ids.size() + size_t(extra));
  size_t image = 0;
  for (int32_t id : ids) {
    if (id == pad)
      expanded.insert(expanded.end(), size_t(image_pad_counts[image++]), pad);
    else
      expanded.push_back(id);
  }
  return expanded;
}

}  // namespace qwenvl
