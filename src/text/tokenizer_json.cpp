#include "text/tokenizer_json.h"

#include "core/error.h"

namespace qwenvl {

namespace {

using nlohmann::json;

// A SAX handler that builds the tree for everything except the two captured lists.
class Reader : public nlohmann::json_sax<json> {
 public:
  Reader(TokenizerJson& out, const std::string& path) : out_(out), path_(path) {}

  bool null() override { return value(json()); }
  bool boolean(bool v) override { return value(v); }
  bool number_integer(number_integer_t v) override { return number(v); }
  bool number_unsigned(number_unsigned_t v) override { return number(int64_t(v)); }
  bool number_float(number_float_t v, const string_t&) override { return value(v); }
  bool binary(binary_t&) override { return value(json()); }

  bool string(string_t& v) override {
    if (mode_ == Mode::Merges) {
      if (pair_depth_ == 1) {
        pair_.push_back(std::move(v));
      } else {  // the older "left right" spelling
        size_t space = v.find(' ', 1);
        if (space == std::string::npos) fail(path_, ": malformed merge '", v, "'");
        out_.merges.emplace_back(v.substr(0, space), v.substr(space + 1));
      }
      return true;
    }
    return value(std::move(v));
  }

  bool key(string_t& k) override {
    if (mode_ == Mode::Vocab)
      vocab_key_ = std::move(k);
    else
      key_ = std::move(k);
    return true;
  }

  bool start_object(std::size_t) override {
    if (mode_ != Mode::Tree) fail(path_, ": unexpected object inside model.vocab or merges");
    bool vocab = in_model() && key_ == "vocab";
    json* o = insert(json::object());
    keys_.push_back(key_);
    stack_.push_back(o);
    if (vocab) mode_ = Mode::Vocab;
    return true;
  }
  bool end_object() override {
    mode_ = Mode::Tree;
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  bool start_array(std::size_t) override {
    if (mode_ == Mode::Merges) {
      if (pair_depth_ == 1) fail(path_, ": malformed merge (nested list)");
      pair_depth_ = 1;
      pair_.clear();
      return true;
    }
    if (mode_ == Mode::Vocab) fail(path_, ": unexpected list inside model.vocab");
    bool merges = in_model() && key_ == "merges";
    json* a = insert(json::array());
    keys_.push_back(key_);
    stack_.push_back(a);
    if (merges) mode_ = Mode::Merges;
    return true;
  }
  bool end_array() override {
    if (mode_ == Mode::Merges && pair_depth_ == 1) {
      if (pair_.size() != 2) fail(path_, ": malformed merge (not a pair)");
      out_.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      pair_depth_ = 0;
      return true;
    }
    mode_ = Mode::Tree;
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& e) override {
    fail(path_, " is not valid JSON (byte ", position, "): ", e.what());
  }

 private:
  enum class Mode { Tree, Vocab, Merges };

  // True when the innermost open container is the "model" object at the top level.
  bool in_model() const { return stack_.size() == 2 && keys_.back() == "model"; }

  bool number(int64_t v) {
    if (mode_ == Mode::Vocab) {
      out_.vocab.emplace_back(std::move(vocab_key_), v);
      return true;
    }
    return value(v);
  }

  bool value(json v) {
    if (mode_ != Mode::Tree) fail(path_, ": unexpected value inside model.vocab or merges");
    insert(std::move(v));
    return true;
  }

  json* insert(json v) {
    if (stack_.empty()) {
      out_.rest = std::move(v);
      return &out_.rest;
    }
    json& top = *stack_.back();
    if (top.is_object()) {
      json& slot = top[key_];
      slot = std::move(v);
      return &slot;
    }
    top.push_back(std::move(v));
    return &top.back();
  }

  TokenizerJson& out_;
  const std::string& path_;
  std::vector<json*> stack_;
  std::vector<std::string> keys_;  // the key each open container was stored under
  std::string key_, vocab_key_;
  Mode mode_ = Mode::Tree;
  int pair_depth_ = 0;
  std::vector<std::string> pair_;
};

}  // namespace

TokenizerJson read_tokenizer_json(const std::string& text, const std::string& path) {
  TokenizerJson out;
  out.vocab.reserve(1 << 18);
  out.merges.reserve(1 << 18);
  Reader reader(out, path);
  json::sax_parse(text, &reader);
  return out;
}

}  // namespace qwenvl
