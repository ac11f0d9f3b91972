// The server's sampling fields and remote images over HTTP: logprobs whole and streamed in
// OpenAI's schema, presence/frequency penalties, their bounds, and http:// image URLs from an
// allowed host (the fixture's image server, on loopback through the tests' override).
#include <cmath>

#include "server/server_fixture.h"

namespace qwenvl {
namespace {

class ServerSamplingTest : public ServerFixture {
 protected:
  // The data of each "data: " event but [DONE].
  static std::vector<json> events(const std::string& body) {
    std::vector<json> out;
    size_t pos = 0;
    while ((pos = body.find("data: ", pos)) != std::string::npos) {
      const size_t end = body.find("\n\n", pos);
      const std::string data = body.substr(pos + 6, end - pos - 6);
      pos = end;
      if (data != "[DONE]") out.push_back(json::parse(data));
    }
    return out;
  }
  // One logprobs.content entry: OpenAI's fields, bytes that spell the token.
  static void expect_entry(const json& entry, size_t top) {
    ASSERT_TRUE(entry["token"].is_string()) << entry;
    EXPECT_LE(entry["logprob"].get<double>(), 0.0);
    ASSERT_TRUE(entry["bytes"].is_array());
    ASSERT_EQ(entry["top_logprobs"].size(), top) << entry;
    for (size_t i = 1; i < top; ++i)
      EXPECT_GE(entry["top_logprobs"][i - 1]["logprob"], entry["top_logprobs"][i]["logprob"]);
  }
};

TEST_F(ServerSamplingTest, AnswersLogprobsWholeAndStreamedAlike) {
  json body = hello(6);
  body["ignore_eos"] = true;
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  const auto whole = post(body);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const json content = json::parse(whole->body)["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 6u);
  double probability_mass = 0;
  for (const json& entry : content) {
    expect_entry(entry, 3);
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(entry["token"], entry["top_logprobs"][0]["token"]);
    EXPECT_DOUBLE_EQ(entry["logprob"].get<double>(), entry["top_logprobs"][0]["logprob"]);
    for (const json& top : entry["top_logprobs"])
      probability_mass += std::exp(top["logprob"].get<double>());
  }
  EXPECT_LE(probability_mass, 6.0 + 1e-6);

  body["stream"] = true;
  const auto streamed = post(body);
  ASSERT_EQ(streamed->status, 200) << streamed->body;
  json joined = json::array();
  for (const json& e : events(streamed->body))
    if (!e["choices"].empty() && e["choices"][0].contains("logprobs"))
      for (const json& entry : e["choices"][0]["logprobs"]["content"]) joined.push_back(entry);
  EXPECT_EQ(joined, content);

  // Without logprobs the field is null, as OpenAI's.
  body = hello(2);
  EXPECT_TRUE(json::parse(post(body)->body)["choices"][0]["logprobs"].is_null());
}

TEST_F(ServerSamplingTest, PenalisesRepeatsAndChecksTheBounds) {
  json body = hello(24);
  body["ignore_eos"] = true;
  const std::string plain = json::parse(post(body)->body)["choices"][0]["message"]["content"];
  body["frequency_penalty"] = 2.0;
  body["presence_penalty"] = 2.0;
  const auto penalised = post(body);
  ASSERT_EQ(penalised->status, 200) << penalised->body;
  EXPECT_NE(json::parse(penalised->body)["choices"][0]["message"]["content"], plain);

  for (const char* key : {"presence_penalty", "frequency_penalty"}) {
    body = hello();
    body[key] = 2.5;
    expect_error(post(body), 400, key);
  }
  body = hello();
  body["logprobs"] = true;
  body["top_logprobs"] = 21;
  expect_error(post(body), 400, "top_logprobs");
  body = hello();
  body["top_logprobs"] = 2;
  expect_error(post(body), 400, "top_logprobs");
  expect_serving();
}

TEST_F(ServerSamplingTest, FetchesHttpImagesFromAllowedHostsOnly) {
  const std::string path = "/images/banker_70x42.png";
  json body = hello(2);
  body["messages"] = json::array({image_message(data_url("banker_70x42.png"))});
  const json inline_image = json::parse(post(body)->body);
  body["messages"] =
      json::array({image_message("http://127.0.0.1:" + std::to_string(image_port_) + path)});
  const auto fetched = post(body);
  ASSERT_EQ(fetched->status, 200) << fetched->body;
  EXPECT_EQ(json::parse(fetched->body)["usage"], inline_image["usage"]);
  // localhost is not on the list; a missing file is the remote's 404, the client's 400.
  body["messages"] =
      json::array({image_message("http://localhost:" + std::to_string(image_port_) + path)});
  expect_error(post(body), 400, "messages[0].content[0]");
  body["messages"] = json::array(
      {image_message("http://127.0.0.1:" + std::to_string(image_port_) + "/images/none.png")});
  expect_error(post(body), 400, "messages[0].content[0]");
  expect_serving();
}

}  // namespace
}  // namespace qwenvl
