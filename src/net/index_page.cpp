#include "net/index_page.hpp"

#include "protocol/encoder.hpp"

namespace bc::net {

namespace {

// The docs travel with the source and the installed package (docs/ and /usr/local/share/doc/broadcaster), not
// with the binary: the page names them rather than link to a host that may not be reachable.
constexpr std::string_view docs =
    "README.md and docs/ (protocol.md, configuration.md, security.md) in the source tree; "
    "broadcaster --help lists every option";

std::string html_escaped(std::string_view s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string html(std::string_view base, bool console, bool dev) {
  const std::string b = html_escaped(base);
  std::string out =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Broadcaster</title>"
      "<link rel=\"icon\" href=\"data:,\"></head>\n<body style=\"font:15px system-ui,sans-serif;max-width:"
      "640px;margin:24px auto\">\n<h1>Broadcaster</h1>\n<ul>\n";
  if (console) {
    out += "<li>Web console: <a href=\"" + b + "/console/\">" + b + "/console/</a></li>\n";
    if (dev)
      out += "<li>Example chat: <a href=\"" + b + "/console/chat/\">" + b + "/console/chat/</a></li>\n";
  } else {
    out +=
        "<li>The web console is off: start the server with <code>--console</code> (or <code>--dev</code>)"
        "</li>\n";
  }
  out += "<li>WebSocket: <code>" + b + "/websocket</code>; REST publish: <code>POST " + b +
         "/publish</code>; <a href=\"" + b + "/health\">" + b +
         "/health</a></li>\n<li>Docs: " + html_escaped(docs) + "</li>\n</ul>\n</body></html>\n";
  return out;
}

std::string json(std::string_view base, bool console, bool dev) {
  const std::string b(base);
  return "{\"name\":\"broadcaster\",\"console\":" +
         (console ? protocol::json_quote(b + "/console/") : std::string("null")) +
         ",\"chat\":" + (console && dev ? protocol::json_quote(b + "/console/chat/") : std::string("null")) +
         ",\"websocket\":" + protocol::json_quote(b + "/websocket") +
         ",\"publish\":" + protocol::json_quote(b + "/publish") +
         ",\"health\":" + protocol::json_quote(b + "/health") + ",\"docs\":" + protocol::json_quote(docs) +
         "}";
}

}  // namespace

index_page make_index_page(std::string_view base, bool console, bool dev, std::string_view accept) {
  if (accept.find("text/html") != std::string_view::npos)
    return {"text/html; charset=utf-8", html(base, console, dev)};
  return {"application/json", json(base, console, dev)};
}

}  // namespace bc::net
