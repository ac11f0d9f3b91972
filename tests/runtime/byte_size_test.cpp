#include "runtime/byte_size.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "runtime/memory_budget.h"

namespace qwenvl {
namespace {

int64_t parse(const std::string& text) { return parse_byte_size(text, "--size"); }

TEST(ByteSize, ReadsUnitsOfBothKinds) {
  EXPECT_EQ(parse("123"), 123);
  EXPECT_EQ(parse("0"), 0);
  EXPECT_EQ(parse("20GiB"), int64_t(20) << 30);
  EXPECT_EQ(parse("20GB"), int64_t(20'000'000'000));
  EXPECT_EQ(parse("512MiB"), int64_t(512) << 20);
  EXPECT_EQ(parse("512MB"), int64_t(512'000'000));
  EXPECT_EQ(parse("64KiB"), int64_t(64) << 10);
  EXPECT_EQ(parse("1.5GiB"), int64_t(3) << 29);
  EXPECT_EQ(parse("2TiB"), int64_t(2) << 40);
  EXPECT_EQ(parse("100B"), 100);
}

TEST(ByteSize, UnitsAreCaseInsensitiveAndTheBIsOptional) {
  EXPECT_EQ(parse("20gib"), int64_t(20) << 30);
  EXPECT_EQ(parse("20Gi"), int64_t(20) << 30);
  EXPECT_EQ(parse("20G"), int64_t(20'000'000'000));
  EXPECT_EQ(parse("20 GiB"), int64_t(20) << 30);
  EXPECT_EQ(parse("9223372036854775807"), INT64_MAX);
}

void expect_error(const std::string& text, const std::string& part) {
  try {
    parse(text);
    ADD_FAILURE() << "'" << text << "' was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("--size"), std::string::npos) << message;
    EXPECT_NE(message.find(part), std::string::npos) << message;
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
  }
}

TEST(ByteSize, RefusesWhatIsNotASize) {
  expect_error("", "got nothing");
  expect_error("-1GiB", "negative");
  expect_error("20XB", "unknown unit");
  expect_error("20GiB!", "unexpected");
  expect_error("20GiB 3", "unexpected");
  expect_error("nan", "expected a size");
  expect_error("inf", "expected a size");
  expect_error("1e9", "unexpected");
  expect_error("0x10", "unexpected");
  expect_error("12QB", "unknown unit");
  expect_error(".", "expected a size");
  expect_error("1.5", "fraction");
  expect_error("9223372036854775808", "too large");
  expect_error("8388608TiB", "too large");
  expect_error("99999999999999999999.5GiB", "too large");
}

TEST(ByteSize, FormatsInBinaryUnits) {
  EXPECT_EQ(format_bytes(int64_t(20) << 30), "20.0 GiB");
  EXPECT_EQ(format_bytes(int64_t(3) << 29), "1.5 GiB");
  EXPECT_EQ(format_bytes(int64_t(512) << 20), "512.0 MiB");
  EXPECT_EQ(format_bytes(123), "123 B");
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_count(12845056), "12,845,056");
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_count(-1000), "-1,000");
  EXPECT_EQ(format_count(INT64_MIN), "-9,223,372,036,854,775,808");
}

TEST(MemoryBudget, ReadsDevicesAndSizesInOrder) {
  const auto budgets = parse_memory_budgets("cuda:0=20GiB,cpu=64GiB,cuda:1=1.5GiB");
  ASSERT_EQ(budgets.size(), 3u);
  EXPECT_EQ(budgets[0].device, (DeviceId{DeviceKind::CUDA, 0}));
  EXPECT_EQ(budgets[0].bytes, int64_t(20) << 30);
  EXPECT_EQ(budgets[1].device, (DeviceId{DeviceKind::CPU, 0}));
  EXPECT_EQ(budgets[1].bytes, int64_t(64) << 30);
  EXPECT_EQ(budgets[2].device, (DeviceId{DeviceKind::CUDA, 1}));
  EXPECT_EQ(budgets[2].bytes, int64_t(3) << 29);
  EXPECT_EQ(device_name(budgets[2].device), "cuda:1");
}

void expect_budget_error(const std::string& spec, const std::string& part) {
  try {
    parse_memory_budgets(spec);
    ADD_FAILURE() << "'" << spec << "' was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("--max-memory"), std::string::npos) << message;
    EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

TEST(MemoryBudget, RefusesBadSpecs) {
  expect_budget_error("", "got nothing");
  expect_budget_error("cuda:0", "no '='");
  expect_budget_error("cuda:0=20GiB,", "empty entry");
  expect_budget_error("tpu:0=20GiB", "unknown device 'tpu:0'");
  expect_budget_error("cuda:x=20GiB", "unknown device");
  expect_budget_error("cuda:=20GiB", "unknown device");
  expect_budget_error("cuda:0=20GiB,cuda:0=10GiB", "cuda:0 is named twice");
  expect_budget_error("cuda=1GiB,cuda:0=2GiB", "named twice");
  expect_budget_error("cuda:0=20 furlongs", "for cuda:0");
  expect_budget_error("cpu=-3GiB", "negative");
}

}  // namespace
}  // namespace qwenvl
