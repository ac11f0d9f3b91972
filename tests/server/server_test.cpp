// The server driven over HTTP: completions plain and streamed, images, limits, every error
// status, a client that leaves mid-stream, and the server answering after each.
#include "server/server_fixture.h"

namespace qwenvl {
namespace {

class ServerTest : public ServerFixture {};

TEST_F(ServerTest, CompletesAsOpenAIDoes) {
  const auto res = post(hello(5));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json body = json::parse(res->body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "tiny-tied");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["completion_tokens"], 5);
  EXPECT_GT(body["usage"]["prompt_tokens"].get<int>(), 5);
  EXPECT_EQ(body["usage"]["prompt_tokens_details"]["image_tokens"], 0);
}

TEST_F(ServerTest, GreedyIsRepeatableAndMultiTurnDiffers) {
  const json a = json::parse(post(hello(6))->body);
  const json b = json::parse(post(hello(6))->body);
  EXPECT_EQ(a["choices"][0]["message"]["content"], b["choices"][0]["message"]["content"]);
  json turns = hello(6);
  turns["messages"] = json::array({{{"role", "system"}, {"content", "Be brief."}},
                                   {{"role", "user"}, {"content", "Hello"}},
                                   {{"role", "assistant"}, {"content", "Hi."}},
                                   {{"role", "user"}, {"content", "Again"}}});
  const json c = json::parse(post(turns)->body);
  EXPECT_GT(c["usage"]["prompt_tokens"].get<int>(), a["usage"]["prompt_tokens"].get<int>() + 6);
}

TEST_F(ServerTest, StreamsChunksThenUsageThenDone) {
  json body = hello(4);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const auto res = post(body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  std::vector<json> events;
  size_t pos = 0;
  bool done = false;
  while ((pos = res->body.find("data: ", pos)) != std::string::npos) {
    const size_t end = res->body.find("\n\n", pos);
    const std::string data = res->body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") {
      done = true;
      break;
    }
    events.push_back(json::parse(data));
  }
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.front()["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 4);
  EXPECT_TRUE(events.back()["choices"].empty());
}

TEST_F(ServerTest, TakesDataUrlImagesWithTheirOwnPixelLimits) {
  json body = hello(2);
  body["messages"] = json::array({image_message(data_url("banker_70x42.png"))});
  const json plain = json::parse(post(body)->body);
  const int64_t tokens = plain["usage"]["prompt_tokens_details"]["image_tokens"];
  EXPECT_GT(tokens, 0);
  // The same image again: its embeddings come from the cache, and the answer is the same.
  const int64_t hits = metric("qwenvl_encoder_cache_hits_total");
  const json again = json::parse(post(body)->body);
  EXPECT_EQ(again["choices"][0]["message"]["content"], plain["choices"][0]["message"]["content"]);
  EXPECT_EQ(metric("qwenvl_encoder_cache_hits_total"), hits + 1);
  // Qwen's per-image max_pixels: 28·28 pixels is one merged token.
  body["messages"] = json::array(
      {image_message(data_url("banker_70x42.png"), {{"min_pixels", 784}, {"max_pixels", 784}})});
  const json small = json::parse(post(body)->body);
  EXPECT_EQ(small["usage"]["prompt_tokens_details"]["image_tokens"], 1);
  // The request-level mm_processor_kwargs.
  body["messages"] = json::array({image_message(data_url("banker_70x42.png"))});
  body["mm_processor_kwargs"] = {{"min_pixels", 784}, {"max_pixels", 784}};
  const json kwargs = json::parse(post(body)->body);
  EXPECT_EQ(kwargs["usage"]["prompt_tokens_details"]["image_tokens"], 1);
}

TEST_F(ServerTest, ReadsFileUrlsOnlyUnderTheAllowedDir) {
  json body = hello(2);
  body["messages"] = json::array({image_message("file://" + kImageDir + "/tiny_27x27.png")});
  EXPECT_EQ(post(body)->status, 200);
  body["messages"] = json::array({image_message("file://" + kModelDir + "/config.json")});
  expect_error(post(body), 400, "messages[0].content[0]");
  body["messages"] = json::array({image_message("file://" + kImageDir + "/../models/x.png")});
  expect_error(post(body), 400);
  body["messages"] = json::array({image_message("https://169.254.169.254/latest")});
  expect_error(post(body), 400);
}

TEST_F(ServerTest, AnswersBadRequestsWith400AndKeepsServing) {
  expect_error(client().Post("/v1/chat/completions", "{not json", "application/json"), 400);
  json body = hello();
  body["n"] = 2;
  expect_error(post(body), 400, "n");
  body = hello();
  body["temperature"] = -1;
  expect_error(post(body), 400, "temperature");
  body = hello();
  body["max_tokens"] = "ten";
  expect_error(post(body), 400, "max_tokens");
  body = hello();
  body["messages"] = json::array({image_message("data:image/png;base64,!!!!")});
  expect_error(post(body), 400);
  body["messages"] = json::array({image_message("data:image/png;base64," + base64("not a png"))});
  expect_error(post(body), 400);
  body = hello(4096);  // the prompt plus max_tokens exceed the 4,096-token context
  expect_error(post(body), 400);
  expect_serving();
  EXPECT_GE(metric("qwenvl_requests_total{status=\"400\"}"), 7);
}

TEST_F(ServerTest, RequiresTheApiKeyOnV1Routes) {
  expect_error(post(hello(), false), 401);
  httplib::Client wrong("127.0.0.1", port_);
  wrong.set_bearer_token_auth("wrong");
  expect_error(wrong.Get("/v1/models"), 401);
  const auto health = client(false).Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  const auto models = client().Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "tiny-tied");
}

TEST_F(ServerTest, RefusesBodiesOverTheLimitWith413) {
  json body = hello();
  body["messages"][0]["content"] = std::string(2 << 20, 'a');
  expect_error(post(body), 413);
  expect_serving();
}

TEST_F(ServerTest, AnswersAFullQueueWith503AndRetryAfter) {
  // The worker held, two requests fill the queue (max_queue 2) and the next one is refused.
  engine_->hold(true);
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i) clients.emplace_back([&] { ok += post(hello(1))->status == 200; });
  wait_for_metric("qwenvl_queue_depth", 2);
  const auto refused = post(hello(1));
  engine_->hold(false);
  expect_error(refused, 503);
  EXPECT_EQ(refused->get_header_value("Retry-After"), "1");
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(ok.load(), 2);
  expect_serving();
}

TEST_F(ServerTest, CancelsWhenAStreamingClientLeaves) {
  auto generated = [] { return metric("qwenvl_generation_tokens_total"); };
  const int64_t before = generated();
  json body = hello(4000);
  body["messages"][0]["content"] = "Hi";
  body["stream"] = true;
  body["ignore_eos"] = true;
  int chunks = 0;
  httplib::Request request;
  request.method = "POST";
  request.path = "/v1/chat/completions";
  request.headers = {{"Authorization", cat("Bearer ", kKey)}, {"Content-Type", "application/json"}};
  request.body = body.dump();
  // Leaves after a few chunks: a receiver that returns false closes the connection.
  request.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  client().send(request, response, error);
  EXPECT_EQ(chunks, 3);
  // The worker stops at its next token, long before 4,000, and the server answers again.
  expect_serving();
  EXPECT_LT(generated() - before, 100);
  wait_for_metric("qwenvl_running_sequences", 0);
  const auto metrics = client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("qwenvl_time_to_first_token_seconds_count"), std::string::npos);
  EXPECT_NE(metrics->body.find("qwenvl_requests_total{status=\"200\"}"), std::string::npos);
}

}  // namespace
}  // namespace qwenvl
