#pragma once
// The REST publish endpoint, without HTTP: an Authorization header and a body in, a status and JSON out.

#include <functional>
#include <string>
#include <string_view>

#include "auth/api_keys.hpp"
#include "engine/node.hpp"
#include "protocol/publisher.hpp"
#include "protocol/session_stats.hpp"

namespace bc::protocol {

struct http_reply {
  unsigned status = 200;
  std::string body;
};

class rest_api {
 public:
  rest_api(publisher& pub, const auth::api_keys& keys, engine::node& node)
      : pub_(pub), keys_(keys), node_(node) {}

  // POST {BASE}/publish. `done` runs exactly once, possibly on another thread.
  void publish(std::string_view authorization, std::string_view body, session_stats& stats,
               std::function<void(http_reply)> done) const;

  // GET {BASE}/history?channel=C&limit=L&epoch=E&offset=O (`query`: the text after '?'). `done` runs exactly
  // once, possibly on another thread.
  void history(std::string_view authorization, std::string_view query, session_stats& stats,
               std::function<void(http_reply)> done) const;

  // True when `authorization` is "Bearer <a configured key>".
  bool authorized(std::string_view authorization) const;
  // The same, counting a failure in `stats` (every endpoint that takes an API key: a key being guessed
  // shows in broadcaster_auth_failures_total whichever endpoint it is tried on).
  bool authorized(std::string_view authorization, session_stats& stats) const;

  static http_reply error_reply(error_code code, std::string_view message);

 private:
  publisher& pub_;
  const auth::api_keys& keys_;
  engine::node& node_;
};

}  // namespace bc::protocol
