// The three protocols live together here: each is a dozen lines of string handling, and keeping them side by
// side makes it plain that the tool asks every server for the same work.
#include "peer_protocol.hpp"

#include <chrono>
#include <stdexcept>

#include "auth/jwt_signer.hpp"

namespace bc::bench {

std::string channel_name(int channel) {
  return "c" + std::to_string(channel);
}

bool find_uint(std::string_view text, std::string_view key, std::uint64_t& out) {
  auto p = text.find(key);
  if (p == std::string_view::npos) return false;
  p += key.size();
  while (p < text.size() && text[p] == ' ') ++p;
  if (p >= text.size() || text[p] < '0' || text[p] > '9') return false;
  std::uint64_t v = 0;
  while (p < text.size() && text[p] >= '0' && text[p] <= '9')
    v = v * 10 + static_cast<std::uint64_t>(text[p++] - '0');
  out = v;
  return true;
}

namespace {

std::string http_post(const protocol_config& cfg, std::string_view path, std::string_view auth,
                      std::string_view body) {
  std::string r;
  r.reserve(200 + body.size());
  r.append("POST ")
      .append(path)
      .append(" HTTP/1.1\r\nHost: ")
      .append(cfg.host)
      .append(":")
      .append(std::to_string(cfg.port))
      .append("\r\n");
  if (!auth.empty()) r.append("Authorization: Bearer ").append(auth).append("\r\n");
  r.append("Content-Type: application/json\r\nContent-Length: ")
      .append(std::to_string(body.size()))
      .append("\r\n\r\n")
      .append(body);
  return r;
}

// Broadcaster: auth with a JWT that authorises the one channel, then subscribe; the subscribe reply
// (requestId 2) means subscribed; broadcasts carry a per-subscription seq.
class broadcaster_protocol final : public peer_protocol {
 public:
  explicit broadcaster_protocol(const protocol_config& cfg) : cfg_(cfg) {
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    iat_ = now - 5;
    tokens_.reserve(static_cast<std::size_t>(cfg.channels));
    for (int c = 0; c < cfg.channels; ++c) tokens_.push_back(token(c, "bench"));
  }
  std::string ws_path(int) const override { return cfg_.base_path + "/websocket"; }
  std::vector<std::string> on_open(int channel, int index) const override {
    // One signature per connection only when users must differ (presence counts users): HMAC is cheap
    // next to the handshake, but the shared token keeps the usual runs as they were.
    const std::string tok = cfg_.distinct_users ? token(channel, "u" + std::to_string(index))
                                                : tokens_[static_cast<std::size_t>(channel)];
    return {R"({"id":1,"method":"auth","params":{"token":")" + tok + "\"}}",
            R"({"id":2,"method":"subscribe","params":{"channel":")" + channel_name(channel) +
                (cfg_.join_leave ? R"(","joinLeave":true}})" : "\"}}")};
  }
  text_event on_text(int, std::string_view t) const override {
    text_event ev;
    if (t.find("\"broadcast\"") != std::string_view::npos) {
      std::uint64_t seq = 0;
      if (find_uint(t, "\"bt\":", ev.sent_us) && find_uint(t, "\"seq\":", seq)) {
        ev.what = text_event::kind::delivery;
        ev.seq = static_cast<std::int64_t>(seq);
      }
      return ev;
    }
    if (t.find("\"error\"") != std::string_view::npos) {
      ev.what = text_event::kind::failed;
      ev.error = std::string(t.substr(0, 200));
    } else if (t.find("\"requestId\":2") != std::string_view::npos) {
      ev.what = text_event::kind::subscribed;
    } else if (t.find("\"method\":\"join\"") != std::string_view::npos ||
               t.find("\"method\":\"leave\"") != std::string_view::npos) {
      ev.what = text_event::kind::notification;
    }
    return ev;
  }
  std::string publish_request(int channel, std::string_view payload) const override {
    std::string body = R"({"channel":")" + channel_name(channel) + R"(","event":"b","payload":)";
    body.append(payload).append("}");
    return http_post(cfg_, cfg_.base_path + "/publish", cfg_.api_key, body);
  }
  bool has_seq() const override { return true; }

 private:
  std::string token(int channel, const std::string& sub) const {
    const std::string claims = R"({"sub":")" + sub + R"(","aud":"broadcaster","iat":)" +
                               std::to_string(iat_) + R"(,"exp":)" + std::to_string(iat_ + 5 + 24 * 3600) +
                               R"(,"authorizedChannels":[")" + channel_name(channel) +
                               R"("],"scope":["subscribe","publish"]})";
    return auth::sign_hs256(cfg_.jwt_secret, claims);
  }

  protocol_config cfg_;
  long long iat_ = 0;
  std::vector<std::string> tokens_;
};

// Nchan: the channel is in the subscriber's URL (nchan_subscriber websocket), each message arrives as the raw
// published body, and POST /pub/<channel> publishes (201 or 202).
class nchan_protocol final : public peer_protocol {
 public:
  explicit nchan_protocol(const protocol_config& cfg) : cfg_(cfg) {}
  std::string ws_path(int channel) const override { return "/sub/" + channel_name(channel); }
  std::vector<std::string> on_open(int, int) const override { return {}; }
  bool subscribed_on_open() const override { return true; }
  text_event on_text(int, std::string_view t) const override {
    text_event ev;
    if (find_uint(t, "\"bt\":", ev.sent_us)) ev.what = text_event::kind::delivery;
    return ev;
  }
  std::string publish_request(int channel, std::string_view payload) const override {
    return http_post(cfg_, "/pub/" + channel_name(channel), "", payload);
  }

 private:
  protocol_config cfg_;
};

// Socket.IO v4 over a plain WebSocket transport (Engine.IO 4): open packet "0{..}", namespace connect "40",
// ping "2" answered by "3", event "42[..]", acknowledged subscribe "421[..]" answered by "431[..]".
class socketio_protocol final : public peer_protocol {
 public:
  explicit socketio_protocol(const protocol_config& cfg) : cfg_(cfg) {}
  std::string ws_path(int) const override { return "/socket.io/?EIO=4&transport=websocket"; }
  std::vector<std::string> on_open(int, int) const override { return {}; }
  text_event on_text(int channel, std::string_view t) const override {
    text_event ev;
    if (t.starts_with("42[")) {
      if (find_uint(t, "\"bt\":", ev.sent_us)) ev.what = text_event::kind::delivery;
    } else if (t == "2") {
      ev.replies.emplace_back("3");
    } else if (t.starts_with("0{")) {
      ev.replies.emplace_back("40");
    } else if (t.starts_with("40")) {
      ev.replies.push_back("421[\"subscribe\",\"" + channel_name(channel) + "\"]");
    } else if (t.starts_with("431")) {
      ev.what = text_event::kind::subscribed;
    } else if (t.starts_with("44") || t.starts_with("1")) {
      ev.what = text_event::kind::failed;
      ev.error = std::string(t.substr(0, 200));
    }
    return ev;
  }
  std::string publish_request(int channel, std::string_view payload) const override {
    return http_post(cfg_, "/publish/" + channel_name(channel), "", payload);
  }

 private:
  protocol_config cfg_;
};

}  // namespace

std::unique_ptr<peer_protocol> make_protocol(const protocol_config& cfg) {
  if (cfg.target == "broadcaster") return std::make_unique<broadcaster_protocol>(cfg);
  if (cfg.target == "nchan") return std::make_unique<nchan_protocol>(cfg);
  if (cfg.target == "socketio") return std::make_unique<socketio_protocol>(cfg);
  throw std::invalid_argument("unknown --target " + cfg.target + " (broadcaster, nchan, socketio)");
}

}  // namespace bc::bench
