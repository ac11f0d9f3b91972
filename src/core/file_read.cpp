#include "core/file_read.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace qwenvl {

namespace {

const char* file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string mib(int64_t bytes) { return cat(bytes >> 20, " MiB"); }

// Reads the `size` bytes fstat reported (fewer if the file shrank meanwhile) into `out`.
template <typename Buffer>
void read_all(int fd, Buffer& out, int64_t size, const std::string& path, const std::string& what) {
  out.resize(size_t(size));
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read ", what, " ", path, ": ", std::strerror(errno));
    if (n == 0) break;
    done += size_t(n);
  }
  out.resize(done);
}

template <typename Buffer>
Buffer read_regular(const std::string& path, int64_t max_bytes, const std::string& what) {
  const RegularFile file = open_regular_file(path, what);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{file.fd};
  if (file.size > max_bytes)
    fail(what, " ", path, " is ", mib(file.size), "; the limit is ", mib(max_bytes));
  Buffer out;
  read_all(file.fd, out, file.size, path, what);
  return out;
}

}  // namespace

RegularFile open_regular_file(const std::string& path, const std::string& what) {
  if (path.empty()) fail("no path given for the ", what);
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) fail("cannot open ", what, " ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("cannot read ", what, " ", path, ": ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(what, " ", path, " is ", file_type_name(st.st_mode), "; give a regular file");
  }
  // Regular files never block; clear the flag so reads behave as usual.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return {fd, int64_t(st.st_size)};
}

std::string read_text_file(const std::string& path, int64_t max_bytes, const std::string& what) {
  return read_regular<std::string>(path, max_bytes, what);
}

std::vector<uint8_t> read_binary_file(const std::string& path, int64_t max_bytes,
                                      const std::string& what) {
  return read_regular<std::vector<uint8_t>>(path, max_bytes, what);
}

std::string read_stdin(int64_t max_bytes, const std::string& what) {
  std::string out;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read the ", what, " from standard input: ", std::strerror(errno));
    if (n == 0) break;
    if (int64_t(out.size()) + n > max_bytes)
      fail("the ", what, " on standard input is larger than the limit of ", mib(max_bytes));
    out.append(buffer, size_t(n));
  }
  return out;
}

}  // namespace qwenvl
