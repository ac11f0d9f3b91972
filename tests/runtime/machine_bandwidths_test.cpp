#include "runtime/machine_bandwidths.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace qwenvl {
namespace {

// Points the cache at a fresh folder for one test.
class CacheDir {
 public:
  CacheDir() {
    dir_ = std::filesystem::temp_directory_path() /
           ("qwenvl_bandwidths_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    setenv("QWENVL_CACHE_DIR", dir_.c_str(), 1);
  }
  ~CacheDir() {
    unsetenv("QWENVL_CACHE_DIR");
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path file() const { return dir_ / "bandwidths.json"; }

 private:
  std::filesystem::path dir_;
};

TEST(MachineBandwidths, MeasuresOnceThenReadsTheCache) {
  CacheDir cache;
  EXPECT_EQ(bandwidth_cache_path(), cache.file().string());
  const Bandwidths first = machine_bandwidths();
  EXPECT_GT(first.host, 1e8);  // any machine streams memory faster than 100 MB/s
  EXPECT_NE(first.basis.find("measured now"), std::string::npos) << first.basis;
  ASSERT_TRUE(std::filesystem::exists(cache.file()));

  const Bandwidths second = machine_bandwidths();
  EXPECT_EQ(second.host, first.host);
  EXPECT_EQ(second.hbm, first.hbm);
  EXPECT_EQ(second.host_to_device, first.host_to_device);
  EXPECT_NE(second.basis.find("cached in " + cache.file().string()), std::string::npos)
      << second.basis;
}

TEST(MachineBandwidths, ADamagedCacheIsMeasuredAgainAndRewritten) {
  CacheDir cache;
  std::filesystem::create_directories(cache.file().parent_path());
  std::ofstream(cache.file()) << "{ not json";
  const Bandwidths measured = machine_bandwidths();
  EXPECT_GT(measured.host, 1e8);
  EXPECT_NE(measured.basis.find("measured now"), std::string::npos) << measured.basis;
  EXPECT_NE(machine_bandwidths().basis.find("cached in"), std::string::npos);
}

}  // namespace
}  // namespace qwenvl
