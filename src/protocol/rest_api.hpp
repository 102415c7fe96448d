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
  rest_api(publisher& pub, const auth::api_keys& keys, engine::node& node,
           std::size_t presence_max_clients = 1000)
      : pub_(pub), keys_(keys), node_(node), presence_max_clients_(presence_max_clients) {}

  // POST {BASE}/publish. `done` runs exactly once, possibly on another thread.
  void publish(std::string_view authorization, std::string_view body, session_stats& stats,
               std::function<void(http_reply)> done) const;

  // GET {BASE}/history?channel=C&limit=L&epoch=E&offset=O (`query`: the text after '?'). `done` runs exactly
  // once, possibly on another thread.
  void history(std::string_view authorization, std::string_view query, session_stats& stats,
               std::function<void(http_reply)> done) const;

  // GET {BASE}/presence?channel=C and GET {BASE}/presence-stats?channel=C (PROTOCOL "(ext) Presence").
  // `done` runs exactly once, possibly on another thread.
  void presence(std::string_view authorization, std::string_view query, bool stats, session_stats& s,
                std::function<void(http_reply)> done) const;

  // POST {BASE}/disconnect {"user"} and POST {BASE}/unsubscribe {"user","channel"} (PROTOCOL "(ext) Server
  // API"), through the broker to every node. `done` runs exactly once, possibly on another thread.
  void control(std::string_view authorization, std::string_view body, bool unsubscribe, session_stats& s,
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
  std::size_t presence_max_clients_;
};

}  // namespace bc::protocol
