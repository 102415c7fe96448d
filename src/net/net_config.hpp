#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace bc::net {

enum class slow_consumer_policy { disconnect, drop };

// Transport settings, filled by app/config.
struct net_config {
  std::string base_path = "/broadcaster";
  std::size_t max_message_size = 64 * 1024;  // WebSocket message and REST body
  std::chrono::milliseconds auth_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds handshake_timeout{10'000};  // whole HTTP request head, against slowloris
  // An idle keep-alive connection between two requests; longer than common client pools' idle timeouts, so
  // that the server does not close a connection a client is about to reuse.
  std::chrono::milliseconds keepalive_timeout{75'000};
  // A REST publish handed to the broker is answered 503 Unavailable if the broker has not answered after this
  // long. The broker bounds its own wait (the Redis broker's publish timeout, 2 s, twice at most when a
  // subscription is being confirmed): this is the safety net above it, not the head deadline.
  std::chrono::milliseconds publish_reply_timeout{10'000};
  std::size_t max_connections = 100'000;
  std::size_t outbound_buffer = 1024 * 1024;  // per connection, bytes
  slow_consumer_policy slow_policy = slow_consumer_policy::disconnect;
  std::vector<std::string> allowed_origins;  // empty = any
  std::string tls_cert;                      // both set: TLS on every connection (https:// and wss://)
  std::string tls_key;
  // Write the connections of one fan-out with one io_uring submission instead of one sendmsg each (falls
  // back to sendmsg when the kernel refuses io_uring).
  bool io_uring = true;
  // permessage-deflate (RFC 7692) for clients that offer it; frames below compression_min_size bytes go
  // uncompressed. compression_level is zlib's 1 (fastest) .. 9 (smallest).
  bool compression = true;
  std::size_t compression_min_size = 128;
  int compression_level = 6;
  bool metrics_auth = false;  // /metrics asks for an API key, like /info
  bool console = false;
  std::string console_dir;
};

}  // namespace bc::net
