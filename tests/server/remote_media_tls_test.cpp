// https image URLs against an httplib TLS server on 127.0.0.1 with a certificate made here:
// a certificate the store does not trust is refused, one it trusts is fetched, and a trusted
// certificate for another name is refused (host names are verified, not only chains).
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "server/remote_media.h"

namespace qwenvl {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A fresh key and a self-signed certificate naming `alt_name` ("IP:127.0.0.1", "DNS:x").
struct SelfSigned {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;

  explicit SelfSigned(const char* alt_name) {
    key = EVP_RSA_gen(2048);
    cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("qwenvl test"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, alt_name},
                                     std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      X509_add_ext(cert, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(cert, key, EVP_sha256());
  }
  ~SelfSigned() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  void write_pem(const fs::path& path) const {
    FILE* f = std::fopen(path.c_str(), "w");
    PEM_write_X509(f, cert);
    std::fclose(f);
  }
};

class TlsImageServer {
 public:
  explicit TlsImageServer(const SelfSigned& identity) : server_(identity.cert, identity.key) {
    server_.Get("/image.png", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("\x89PNG over TLS", "image/png");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // httplib's stop() before the loop runs is lost, and the join would wait forever.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~TlsImageServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/image.png"; }

 private:
  httplib::SSLServer server_;
  std::thread thread_;
  int port_ = 0;
};

RemoteMediaFetcher fetcher(const std::string& ca_cert_path) {
  RemoteMediaOptions options;
  options.domains = MediaDomains::parse("127.0.0.1");
  options.timeout = 5000ms;
  options.ca_cert_path = ca_cert_path;
  return RemoteMediaFetcher(options, LoopbackForTests::kAllowed);
}

std::string refusal(const RemoteMediaFetcher& f, const std::string& url) {
  try {
    f.fetch(url, "image 1");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(RemoteMediaTls, VerifiesTheCertificateAndItsName) {
  const fs::path dir = fs::temp_directory_path() / ("qwenvl-tls-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const SelfSigned right("IP:127.0.0.1"), wrong("DNS:images.example.com");
  right.write_pem(dir / "right.pem");
  wrong.write_pem(dir / "wrong.pem");
  {
    TlsImageServer server(right);
    EXPECT_NE(refusal(fetcher(""), server.url()).find("cannot fetch"), std::string::npos);
    EXPECT_EQ(fetcher((dir / "right.pem").string()).fetch(server.url(), "image 1"),
              "\x89PNG over TLS");
  }
  {
    TlsImageServer server(wrong);
    EXPECT_NE(refusal(fetcher((dir / "wrong.pem").string()), server.url()).find("cannot fetch"),
              std::string::npos);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qwenvl
