#include "checkpoint/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "test_checkpoints.h"

namespace qwenvl {
namespace {

SafetensorsHeader parse(const std::string& bytes, const std::string& name = "x.safetensors") {
  return parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                  name);
}

// Parses a file made of `header` + `data`; expects an Error containing `needle`.
void expect_refused(const std::string& header, const std::string& data, const std::string& needle) {
  std::string bytes = test::raw_safetensors(header, data);
  try {
    parse(bytes, "bad.safetensors");
    ADD_FAILURE() << "accepted header " << header;
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_NE(what.find("bad.safetensors"), std::string::npos) << what;
  }
}

TEST(Safetensors, RoundTripThroughAMappedFile) {
  test::TempDir dir;
  // Known values: f32 [2, 3] = 0..5, bf16 [4] and f16 [2] of chosen floats.
  float f32[6] = {0, 1, 2, 3, 4, 5};
  uint16_t bf16[4], f16[2];
  float bf_src[4] = {1.5f, -2.0f, 0.25f, 1024.0f}, h_src[2] = {3.0f, -0.5f};
  for (int i = 0; i < 4; ++i) bf16[i] = float_to_bf16(bf_src[i]);
  for (int i = 0; i < 2; ++i) f16[i] = float_to_fp16(h_src[i]);
  std::string data(reinterpret_cast<char*>(f32), 24);
  data.append(reinterpret_cast<char*>(bf16), 8).append(reinterpret_cast<char*>(f16), 4);
  std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},)"
      R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("h":{"dtype":"F16","shape":[2],"data_offsets":[32,36]},)"
      R"("empty":{"dtype":"F32","shape":[0,4],"data_offsets":[36,36]}})";
  test::write_file(dir.file("t.safetensors"), test::raw_safetensors(header, data));

  SafetensorsFile file = SafetensorsFile::open(dir.file("t.safetensors"));
  ASSERT_EQ(file.header.tensors.size(), 4u);
  EXPECT_EQ(file.header.data_offset, 8 + header.size());
  std::map<std::string, Tensor> views;
  for (const auto& e : file.header.tensors) views[e.name] = file.view(e);
  EXPECT_EQ(views["a"].shape(), (Shape{2, 3}));
  EXPECT_EQ(views["a"].dtype(), DType::F32);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(views["a"].data<float>()[i], float(i));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(bf16_to_float(views["b"].data<uint16_t>()[i]), bf_src[i]);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(fp16_to_float(views["h"].data<uint16_t>()[i]), h_src[i]);
  EXPECT_EQ(views["empty"].numel(), 0);
  // The view keeps the mapping alive after the file object is gone.
  Tensor a = views["a"];
  views.clear();
  file = SafetensorsFile{};
  EXPECT_EQ(a.data<float>()[5], 5.0f);
}

TEST(Safetensors, WriterHelperProducesParsableFiles) {
  std::string bytes = test::safetensors_bytes(
      {{"x", "BF16", {3, 5}}, {"y", "F32", {7}}, {"z", "F16", {2, 2, 2}}}, 42);
  SafetensorsHeader h = parse(bytes);
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].end - h.tensors[0].begin, 30u);
  EXPECT_EQ(h.data_offset % 8, 0u);
}

TEST(Safetensors, TooShortOrAbsurdLengths) {
  EXPECT_THROW(parse(""), Error);
  EXPECT_THROW(parse(std::string("\x02\0\0", 3)), Error);
  // Header length past the end of the file.
  std::string past = test::raw_safetensors("{}", "");
  past[0] = 100;
  EXPECT_THROW(parse(past), Error);
  // Header length beyond what safetensors permits.
  std::string huge(16, '\0');
  huge[7] = char(0x7f);
  EXPECT_THROW(parse(huge), Error);
  std::string max(8, '\xff');
  EXPECT_THROW(parse(max), Error);
}

TEST(Safetensors, EmptyHeaderObjectIsValid) {
  EXPECT_TRUE(parse(test::raw_safetensors("{}", "")).tensors.empty());
  EXPECT_TRUE(parse(test::raw_safetensors(R"({"__metadata__":{"a":"b"}}  )", "")).tensors.empty());
}

TEST(Safetensors, MalformedHeadersNameTheProblem) {
  const std::string d16(16, '\0');
  expect_refused("{\"a\":", d16, "not valid JSON");
  expect_refused("[1,2]", d16, "should be a JSON object");
  expect_refused(R"({"a":5})", d16, "tensor a");
  expect_refused(R"({"a":{"shape":[2],"data_offsets":[0,4]}})", d16, "tensor a");
  expect_refused(R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,4]}})", d16, "'dtype'");
  expect_refused(R"({"a":{"dtype":"F16","data_offsets":[0,4]}})", d16, "'shape'");
  expect_refused(R"({"a":{"dtype":"F16","shape":"2","data_offsets":[0,4]}})", d16, "'shape'");
  expect_refused(R"({"a":{"dtype":"F16","shape":[-2],"data_offsets":[0,4]}})", d16, "'shape'");
  expect_refused(R"({"a":{"dtype":"F16","shape":[2.5],"data_offsets":[0,4]}})", d16, "'shape'");
  expect_refused(R"({"a":{"dtype":"F16","shape":[2]}})", d16, "'data_offsets'");
  expect_refused(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0]}})", d16, "data_offsets");
  expect_refused(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4,8]}})", d16,
                 "data_offsets");
  expect_refused(R"({"a":{"dtype":"F16","shape":[1,1,1,1,1,1,1],"data_offsets":[0,2]}})", d16,
                 "dimensions");
  expect_refused(R"({"__metadata__":[1],"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})",
                 d16, "__metadata__");
  expect_refused(R"({"":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", d16, "empty name");
}

TEST(Safetensors, OffsetsMustFitShapeAndNotOverlap) {
  const std::string d16(16, '\0');
  expect_refused(R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[4,0]}})", d16,
                 "end before begin");
  expect_refused(R"({"w":{"dtype":"F16","shape":[10],"data_offsets":[0,20]}})", d16, "run past");
  expect_refused(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", d16, "byte count");
  expect_refused(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})",
                 d16, "byte count");
  expect_refused(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                 d16, "overlap");
  expect_refused(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551615,4]}})",
                 d16, "w");
}

TEST(Safetensors, UnsupportedDtypesNameTheTensor) {
  const std::string d16(16, '\0');
  for (const char* dtype : {"I8", "U8", "I32", "I64", "F64", "F8_E4M3", "BOOL", "Q4"})
    expect_refused(cat(R"({"model.layers.0.mlp.up_proj.weight":{"dtype":")", dtype,
                       R"(","shape":[2],"data_offsets":[0,2]}})"),
                   d16, "tensor model.layers.0.mlp.up_proj.weight");
}

TEST(Safetensors, OpeningMissingOrOddFiles) {
  test::TempDir dir;
  EXPECT_THROW(SafetensorsFile::open(dir.file("absent.safetensors")), Error);
  EXPECT_THROW(SafetensorsFile::open(dir.path()), Error);  // a directory
  test::write_file(dir.file("empty.safetensors"), "");
  EXPECT_THROW(SafetensorsFile::open(dir.file("empty.safetensors")), Error);
}

}  // namespace
}  // namespace qwenvl
