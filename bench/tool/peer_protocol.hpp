// What differs between the servers the tool measures: the WebSocket path a subscriber opens, the messages
// that authenticate and subscribe it, how a delivery is recognised, and the HTTP request that publishes.
// Implementations are stateless apart from configuration and are shared by every worker thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bc::bench {

struct protocol_config {
  std::string target = "broadcaster";  // broadcaster | nchan | socketio
  std::string host = "127.0.0.1";
  int port = 0;
  std::string base_path = "/broadcaster";
  std::string jwt_secret = "S";
  std::string api_key = "K";
  int channels = 1;
  bool join_leave = false;      // Broadcaster: subscribe with joinLeave (presence benchmarks)
  bool distinct_users = false;  // Broadcaster: subscriber i authenticates as user "u<i>" (else all "bench")
};

// What one text message from the server meant to a subscriber.
struct text_event {
  // notification: a message that is neither a reply nor a broadcast (join, leave), only counted.
  enum class kind { none, subscribed, delivery, notification, failed } what = kind::none;
  std::int64_t seq = -1;      // per-subscription sequence number, -1 when the protocol has none
  std::uint64_t sent_us = 0;  // publisher's send timestamp carried in the payload (CLOCK_MONOTONIC µs)
  std::vector<std::string> replies;  // text messages to send back (handshake steps, application pings)
  std::string error;                 // for failed
};

class peer_protocol {
 public:
  virtual ~peer_protocol() = default;
  // Request path of the WebSocket upgrade for a subscriber of `channel`.
  virtual std::string ws_path(int channel) const = 0;
  // Text messages to send right after the 101 response of subscriber `index` of `channel`.
  virtual std::vector<std::string> on_open(int channel, int index) const = 0;
  // True when the 101 alone means subscribed (the channel is in the path).
  virtual bool subscribed_on_open() const { return false; }
  virtual text_event on_text(int channel, std::string_view text) const = 0;
  // A complete HTTP/1.1 keep-alive request publishing `payload_json` (a JSON object) to `channel`.
  virtual std::string publish_request(int channel, std::string_view payload_json) const = 0;
  // Whether `seq` gaps are meaningful (the server numbers each subscription's messages).
  virtual bool has_seq() const { return false; }
};

std::unique_ptr<peer_protocol> make_protocol(const protocol_config& cfg);

std::string channel_name(int channel);

// Parses the unsigned integer that follows `key` (e.g. "\"bt\":") in text; returns false when absent.
bool find_uint(std::string_view text, std::string_view key, std::uint64_t& out);

}  // namespace bc::bench
