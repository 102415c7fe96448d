#pragma once
// The message-framing rules of RFC 9112 that Beast's parser leaves to the server: what to refuse in a
// request head before its body is read or the request is acted on.
//
// Why: a server and a proxy in front of it must agree where each request ends. Beast frames a body by a
// final `chunked` coding or by Content-Length and otherwise takes the body to be empty, so a request with
// `Transfer-Encoding: xchunked` (or `chunked, identity`, `gzip`) would have its body read as the next
// request, while a proxy that frames it differently forwards it as one: request smuggling. Every such head is
// refused, and the connection closed, since where the next request starts is no longer known.

#include <boost/beast/http/fields.hpp>
#include <optional>
#include <string_view>

namespace bc::net {

struct framing_error {
  unsigned status;  // 400 or 501
  std::string_view message;
};

// Finds obsolete line folding (RFC 9112 5.2: a field line continued on the next line after a space or tab) in
// a request head fed in pieces, as it arrives. Beast unfolds such lines; a proxy might read them otherwise (a
// folded Transfer-Encoding), so they are refused instead, which the RFC allows.
class obs_fold_detector {
 public:
  // The bytes that follow those fed before; anything after the head's blank line is ignored.
  void feed(std::string_view bytes);
  bool found() const { return found_; }
  void reset() { *this = {}; }

 private:
  enum class state { in_line, line_start, line_start_cr, done };
  state state_ = state::in_line;
  bool found_ = false;
};

// The origin-form (path and query) of a request target: RFC 9112 3.2.2 says a server must accept the
// absolute-form ("http://host/path?q", as sent to proxies) too. Other targets are returned as they are.
std::string_view origin_form(std::string_view target);

// `version` is 10 or 11 (the parser refuses the others). Returns the error to answer with, or nothing when
// the head is acceptable. The caller closes the connection after answering an error.
std::optional<framing_error> check_request_framing(unsigned version, const boost::beast::http::fields& head);

}  // namespace bc::net
