#include "net/ws/deflate_offer.hpp"

#include <optional>
#include <vector>

namespace bc::ws {
namespace {

struct param {
  std::string name;
  std::optional<std::string> value;
};

struct extension {
  std::string name;
  std::vector<param> params;
};

// RFC 7230 3.2.6 tchar.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A cursor over the header with the RFC 6455 9.1 grammar: extension *( ";" param ), comma-separated, params
// `token [ "=" ( token | quoted-string ) ]`, optional whitespace around separators.
class lexer {
 public:
  explicit lexer(std::string_view s) : s_(s) {}

  void skip_ows() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool at_end() const { return i_ == s_.size(); }
  bool eat(char c) {
    skip_ows();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  std::optional<std::string> token() {
    skip_ows();
    const std::size_t start = i_;
    while (i_ < s_.size() && is_tchar(s_[i_])) ++i_;
    if (i_ == start) return std::nullopt;
    return std::string(s_.substr(start, i_ - start));
  }
  std::optional<std::string> quoted() {
    skip_ows();
    if (i_ >= s_.size() || s_[i_] != '"') return std::nullopt;
    std::string out;
    for (++i_; i_ < s_.size(); ++i_) {
      const char c = s_[i_];
      if (c == '"') {
        ++i_;
        return out;
      }
      if (c == '\\') {
        if (++i_ == s_.size()) return std::nullopt;
      }
      out += s_[i_];
    }
    return std::nullopt;  // unterminated
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

std::optional<std::vector<extension>> parse(std::string_view header) {
  lexer lx(header);
  std::vector<extension> out;
  for (;;) {
    // Empty list elements (", ,") are allowed by the # rule.
    while (lx.eat(',')) {
    }
    lx.skip_ows();
    if (lx.at_end()) return out;
    auto name = lx.token();
    if (!name) return std::nullopt;
    extension ext{std::move(*name), {}};
    while (lx.eat(';')) {
      auto pname = lx.token();
      if (!pname) return std::nullopt;
      param p{std::move(*pname), std::nullopt};
      if (lx.eat('=')) {
        p.value = lx.token();
        if (!p.value) p.value = lx.quoted();
        if (!p.value) return std::nullopt;
      }
      ext.params.push_back(std::move(p));
    }
    out.push_back(std::move(ext));
    lx.skip_ows();
    if (lx.at_end()) return out;
    if (!lx.eat(',')) return std::nullopt;
  }
}

// RFC 7692 7.1.2: a decimal integer from 8 to 15, without leading zeros.
std::optional<int> window_bits(std::string_view v) {
  if (v.size() == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
  if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
  return std::nullopt;
}

// The response to `offer`, or nothing when it must be declined.
std::optional<std::string> accept(const extension& offer) {
  bool server_nct = false, client_nct = false, server_bits = false, client_bits = false;
  for (const param& p : offer.params) {
    if (p.name == "server_no_context_takeover" || p.name == "client_no_context_takeover") {
      bool& seen = p.name[0] == 's' ? server_nct : client_nct;
      if (seen || p.value) return std::nullopt;
      seen = true;
    } else if (p.name == "server_max_window_bits") {
      // The shared compressed form uses a 32 KiB window; a smaller one cannot be promised (7.1.2.1).
      if (server_bits || !p.value || window_bits(*p.value) != 15) return std::nullopt;
      server_bits = true;
    } else if (p.name == "client_max_window_bits") {
      // Inflating with a 32 KiB window reads any smaller one, so any valid value is fine (7.1.2.2).
      if (client_bits || (p.value && !window_bits(*p.value))) return std::nullopt;
      client_bits = true;
    } else {
      return std::nullopt;  // unknown parameter (7.1)
    }
  }
  // Both no_context_takeover parameters may be sent unasked (7.1.1.1, 7.1.1.2); client_max_window_bits is
  // left out, which is always allowed and means the client may use any window.
  std::string r = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
  if (server_bits) r += "; server_max_window_bits=15";  // an accepted one must be answered (7.1.2.1)
  return r;
}

bool is_permessage_deflate(std::string_view name) {
  constexpr std::string_view want = "permessage-deflate";
  if (name.size() != want.size()) return false;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const char c = name[i] >= 'A' && name[i] <= 'Z' ? static_cast<char>(name[i] - 'A' + 'a') : name[i];
    if (c != want[i]) return false;
  }
  return true;
}

}  // namespace

deflate_agreement negotiate_deflate(std::string_view offers) {
  const auto list = parse(offers);
  if (!list) return {};
  for (const extension& e : *list) {
    if (!is_permessage_deflate(e.name)) continue;
    if (auto r = accept(e)) return {true, std::move(*r)};
  }
  return {};
}

}  // namespace bc::ws
