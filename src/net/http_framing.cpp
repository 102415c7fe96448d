#include "net/http_framing.hpp"

#include <boost/beast/core/string.hpp>

#include "util/comma_list.hpp"

namespace bc::net {

namespace http = boost::beast::http;

namespace {

// uri-host [ ":" port ] (RFC 3986 3.2.2): reg-name, IPv4 or a bracketed IP literal; pct-encoded allowed.
bool is_valid_host(std::string_view host) {
  for (const char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("-._~%!$&'()*+,;=:[]").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// Walks the comma-separated codings of every Transfer-Encoding line, in order, skipping empty elements
// (RFC 9110 5.6.1).
template <typename Fn>
void for_each_coding(const http::fields& head, Fn&& fn) {
  auto [first, last] = head.equal_range(http::field::transfer_encoding);
  for (auto it = first; it != last; ++it) {
    std::string_view value = it->value();
    while (const auto coding = util::next_list_item(value)) fn(*coding);
  }
}

std::optional<framing_error> check_transfer_encoding(unsigned version, const http::fields& head) {
  if (head.count(http::field::transfer_encoding) == 0) return std::nullopt;
  // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing, Content-Length or not.
  if (version < 11) return framing_error{400, "Transfer-Encoding is not allowed in an HTTP/1.0 request"};
  // RFC 9112 6.3: with both, Transfer-Encoding wins for us but maybe not for a proxy in front: refuse.
  if (head.count(http::field::content_length) != 0)
    return framing_error{400, "a request may not carry both Transfer-Encoding and Content-Length"};
  std::size_t codings = 0, chunked = 0, others = 0;
  bool last_is_chunked = false;
  for_each_coding(head, [&](std::string_view coding) {
    ++codings;
    last_is_chunked = boost::beast::iequals(coding, "chunked");
    if (last_is_chunked)
      ++chunked;
    else
      ++others;
  });
  // RFC 9112 6.3: a request whose final coding is not chunked has no knowable length: 400 and close.
  if (codings == 0 || !last_is_chunked)
    return framing_error{400, "the last Transfer-Encoding must be chunked"};
  if (chunked > 1) return framing_error{400, "chunked may be applied only once"};
  // RFC 9112 6.1: a coding we do not implement (gzip, deflate, ...) before chunked.
  if (others > 0) return framing_error{501, "only the chunked transfer coding is supported"};
  return std::nullopt;
}

}  // namespace

void obs_fold_detector::feed(std::string_view bytes) {
  for (const char c : bytes) {
    switch (state_) {
      case state::done:
        return;
      case state::in_line:
        if (c == '\n') state_ = state::line_start;
        break;
      case state::line_start:
        if (c == ' ' || c == '\t') found_ = true;
        state_ = c == '\r' ? state::line_start_cr : c == '\n' ? state::done : state::in_line;
        break;
      case state::line_start_cr:
        state_ = c == '\n' ? state::done : state::in_line;
        break;
    }
  }
}

std::string_view origin_form(std::string_view target) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() < scheme.size() || !boost::beast::iequals(target.substr(0, scheme.size()), scheme))
      continue;
    const auto rest = target.substr(scheme.size());
    const auto path = rest.find_first_of("/?");
    if (path == std::string_view::npos) return "/";
    return rest.substr(path);
  }
  return target;
}

std::optional<framing_error> check_request_framing(unsigned version, const http::fields& head) {
  // RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in 1.0, and a valid value.
  const auto hosts = head.count(http::field::host);
  if (hosts > 1) return framing_error{400, "more than one Host header"};
  if (hosts == 0 && version >= 11) return framing_error{400, "an HTTP/1.1 request needs a Host header"};
  if (hosts == 1 && !is_valid_host(head[http::field::host])) return framing_error{400, "invalid Host header"};
  return check_transfer_encoding(version, head);
}

}  // namespace bc::net
