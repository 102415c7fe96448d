#pragma once
// The answer to GET {BASE}/: where a person who opened the server's address in a browser (or curl) goes next,
// instead of a bare 404: the web console when it is served, the WebSocket and REST endpoints, and the docs.
// Pure functions over strings: safe from any thread.

#include <string>
#include <string_view>

namespace bc::net {

struct index_page {
  std::string content_type;
  std::string body;
};

// An HTML page when `accept` (the request's Accept header) names text/html, as browsers' do, else JSON.
// `base` is the base path ("" or "/broadcaster"); `console` whether {BASE}/console/ is served; `dev` whether
// the example chat is served there too ({BASE}/console/chat/, dev mode only).
index_page make_index_page(std::string_view base, bool console, bool dev, std::string_view accept);

}  // namespace bc::net
