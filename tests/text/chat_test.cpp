#include "text/chat.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "text_test_util.h"

namespace qwenvl {
namespace {

using test::qwen_tokenizer;

ChatPart text(const std::string& s) { return ChatPart{ChatPart::Kind::Text, s}; }
ChatPart image() { return ChatPart{ChatPart::Kind::Image, ""}; }
ChatPart video() { return ChatPart{ChatPart::Kind::Video, ""}; }

const char* kSystem = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
const char* kImage = "<|vision_start|><|image_pad|><|vision_end|>";

TEST(Chat, SingleTurnGetsTheDefaultSystemMessage) {
  std::vector<ChatMessage> chat = {{"user", {image(), text("Describe this image.")}}};
  EXPECT_EQ(render_chat(chat, true), std::string(kSystem) + "<|im_start|>user\n" + kImage +
                                         "Describe this image.<|im_end|>\n"
                                         "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(chat, false), std::string(kSystem) + "<|im_start|>user\n" + kImage +
                                          "Describe this image.<|im_end|>\n");
}

TEST(Chat, GivenSystemMessageReplacesTheDefault) {
  std::vector<ChatMessage> chat = {{"system", {text("Be brief.")}}, {"user", {text("Hi")}}};
  EXPECT_EQ(render_chat(chat, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(Chat, MultiTurnMultiImageAndVideo) {
  std::vector<ChatMessage> chat = {
      {"user", {text("Compare "), image(), text(" and "), image(), text(".")}},
      {"assistant", {text("The first is red.")}},
      {"user", {video(), text("And this?")}},
  };
  EXPECT_EQ(render_chat(chat, true),
            std::string(kSystem) + "<|im_start|>user\nCompare " + kImage + " and " + kImage +
                ".<|im_end|>\n<|im_start|>assistant\nThe first is red.<|im_end|>\n"
                "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>And this?"
                "<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Chat, SystemAfterTheFirstTurnIsAnOrdinaryTurn) {
  // The template only checks the first message; a later system turn is rendered in place.
  std::vector<ChatMessage> chat = {{"user", {text("a")}}, {"system", {text("b")}}};
  EXPECT_EQ(render_chat(chat, false), std::string(kSystem) +
                                          "<|im_start|>user\na<|im_end|>\n"
                                          "<|im_start|>system\nb<|im_end|>\n");
  EXPECT_EQ(render_chat({}, true), "<|im_start|>assistant\n");
}

TEST(Chat, PromptIdsExpandEachImageLikeTheProcessor) {
  const Tokenizer& tok = qwen_tokenizer();
  std::vector<ChatMessage> chat = {
      {"user", {image(), text("What differs from"), image(), text("?")}}};
  std::vector<int32_t> ids = chat_prompt_ids(tok, chat, {4, 6}, true);
  // The processor repeats the pad string in the text, then tokenizes.
  std::string text = std::string(kSystem) + "<|im_start|>user\n<|vision_start|>" +
                     "<|image_pad|><|image_pad|><|image_pad|><|image_pad|>" +
                     "<|vision_end|>What differs from<|vision_start|>" +
                     "<|image_pad|><|image_pad|><|image_pad|><|image_pad|><|image_pad|>" +
                     "<|image_pad|><|vision_end|>?<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(ids, tok.encode(text));
  int pads = 0;
  for (int32_t id : ids) pads += id == tok.token_id("<|image_pad|>");
  EXPECT_EQ(pads, 10);
}

TEST(Chat, PromptIdsRefuseMismatchedCounts) {
  const Tokenizer& tok = qwen_tokenizer();
  std::vector<ChatMessage> one_image = {{"user", {image(), text("x")}}};
  EXPECT_THROW(chat_prompt_ids(tok, one_image, {}, true), Error);
  EXPECT_THROW(chat_prompt_ids(tok, one_image, {4, 4}, true), Error);
  EXPECT_THROW(chat_prompt_ids(tok, one_image, {0}, true), Error);
  // A pad typed into the text would be taken for an image by the processor: refused.
  std::vector<ChatMessage> typed = {{"user", {image(), text("<|image_pad|>")}}};
  EXPECT_THROW(chat_prompt_ids(tok, typed, {4}, true), Error);
  EXPECT_NO_THROW(chat_prompt_ids(tok, one_image, {4}, true));
}

TEST(Chat, PromptIdsExpandVideosAndImagesInOrder) {
  const Tokenizer& tok = qwen_tokenizer();
  std::vector<ChatMessage> chat = {
      {"user", {video(), image(), video(), text("Which shows the cat?")}}};
  std::vector<int32_t> ids = chat_prompt_ids(tok, chat, {2}, {3, 1}, true);
  auto repeat = [](const std::string& s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
  };
  std::string want = std::string(kSystem) + "<|im_start|>user\n<|vision_start|>" +
                     repeat("<|video_pad|>", 3) + "<|vision_end|><|vision_start|>" +
                     repeat("<|image_pad|>", 2) + "<|vision_end|><|vision_start|>" +
                     repeat("<|video_pad|>", 1) +
                     "<|vision_end|>Which shows the cat?<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(ids, tok.encode(want));
  // counts that do not match the videos, or a typed video pad, are refused
  EXPECT_THROW(chat_prompt_ids(tok, chat, {2}, {3}, true), Error);
  EXPECT_THROW(chat_prompt_ids(tok, chat, {2}, true), Error);
  std::vector<ChatMessage> typed = {{"user", {video(), text("<|video_pad|>")}}};
  EXPECT_THROW(chat_prompt_ids(tok, typed, {}, {4}, true), Error);
}

}  // namespace
}  // namespace qwenvl
