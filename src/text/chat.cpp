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
constexpr const char* kVideoPad = "<|video_pad|>";
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
  return chat_prompt_ids(tokenizer, messages, image_pad_counts, {}, add_generation_prompt);
}

std::vector<int32_t> chat_prompt_ids(const Tokenizer& tokenizer,
                                     const std::vector<ChatMessage>& messages,
                                     const std::vector<int64_t>& image_pad_counts,
                                     const std::vector<int64_t>& video_pad_counts,
                                     bool add_generation_prompt) {
  size_t images = 0, videos = 0;
  for (const ChatMessage& message : messages)
    for (const ChatPart& part : message.parts) {
      images += part.kind == ChatPart::Kind::Image;
      videos += part.kind == ChatPart::Kind::Video;
    }
  if (images != image_pad_counts.size())
    fail("the chat has ", images, " image(s) but ", image_pad_counts.size(),
         " image token count(s) were given");
  if (videos != video_pad_counts.size())
    fail("the chat has ", videos, " video(s) but ", video_pad_counts.size(),
         " video token count(s) were given");
  for (int64_t count : image_pad_counts)
    if (count <= 0) fail("an image must take at least one token, got ", count);
  for (int64_t count : video_pad_counts)
    if (count <= 0) fail("a video must take at least one token, got ", count);

  const int32_t image_pad = tokenizer.token_id(kImagePad);
  const int32_t video_pad = tokenizer.token_id(kVideoPad);
  std::vector<int32_t> ids = tokenizer.encode(render_chat(messages, add_generation_prompt));
  // The processor (Qwen2_5_VLProcessor.__call__) repeats each <|image_pad|> and <|video_pad|> of
  // the text, image by image and video by video, before tokenizing; a pad is a special token
  // matched before everything else, so repeating its id after tokenizing gives the same ids. A
  // pad typed inside a message's text counts as an image or video there too, so it must be
  // matched by a count.
  size_t image_pads = 0, video_pads = 0;
  for (int32_t id : ids) {
    image_pads += id == image_pad;
    video_pads += id == video_pad;
  }
  if (image_pads != image_pad_counts.size())
    fail("the chat text holds ", image_pads, " <|image_pad|> token(s) for ",
         image_pad_counts.size(), " image(s); remove literal \"<|image_pad|>\" from message text");
  if (video_pads != video_pad_counts.size())
    fail("the chat text holds ", video_pads, " <|video_pad|> token(s) for ",
         video_pad_counts.size(), " video(s); remove literal \"<|video_pad|>\" from message text");
  int64_t extra = 0;
  for (int64_t count : image_pad_counts) extra += count - 1;
  for (int64_t count : video_pad_counts) extra += count - 1;
  std::vector<int32_t> expanded;
  expanded.reserve(ids.size() + size_t(extra));
  size_t image = 0, video = 0;
  for (int32_t id : ids) {
    if (id == image_pad)
      expanded.insert(expanded.end(), size_t(image_pad_counts[image++]), image_pad);
    else if (id == video_pad)
      expanded.insert(expanded.end(), size_t(video_pad_counts[video++]), video_pad);
    else
      expanded.push_back(id);
  }
  return expanded;
}

}  // namespace qwenvl
