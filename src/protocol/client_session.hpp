#pragma once
// The protocol state of one client connection: authentication, subscriptions, request dispatch. It speaks
// JSON and knows nothing of sockets: bytes leave through a client_transport.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt_verifier.hpp"
#include "broker/broker.hpp"
#include "core/hub.hpp"
#include "core/subscriber.hpp"
#include "engine/thread_engine.hpp"
#include "protocol/error_code.hpp"
#include "protocol/publisher.hpp"
#include "protocol/request.hpp"
#include "protocol/session_stats.hpp"

namespace bc::protocol {

// Implemented by the transport (net::ws_session). Called only on the connection's thread, except the
// function returned by make_deferrer().
class client_transport {
 public:
  virtual ~client_transport() = default;
  virtual void send_text(std::string text) = 0;
  virtual void send_publication(const core::publication_ptr& pub, std::uint64_t seq) = 0;
  // Starts the close handshake; the session is torn down later, never inside this call.
  virtual void close(std::uint16_t code, std::string_view reason) = 0;
  // Returns a function, callable from any thread, that runs a callback on this connection's thread if the
  // connection is still open by then (and drops it otherwise).
  virtual std::function<void(std::function<void()>)> make_deferrer() = 0;
};

struct session_limits {
  std::size_t max_subscriptions = 1000;
  std::int64_t jwt_leeway_s = 30;  // an open connection is closed at exp + leeway
  // Token bucket per connection: `rate` requests per second on average, `burst` at once; 0 = unlimited. A
  // request over the limit is answered ResourceExhausted; a client that keeps going (max_violations refusals
  // without the bucket refilling completely in between) is disconnected.
  double rate = 0;
  double burst = 0;
  unsigned max_violations = 50;
  std::size_t presence_max_clients = 1000;  // the most members a presence answer lists
};

// What every session on one thread shares: that thread's hub and the node-wide services.
struct session_services {
  engine::thread_engine& engine;  // subscriptions, on this thread's hub
  publisher& pub;
  const auth::jwt_verifier& verifier;
  session_limits limits;
  session_stats& stats;
  // The rate limiter's clock. Tests substitute one they move by hand, since the limiter's behaviour is a
  // function of elapsed time and a loaded machine (sanitizers, parallel tests) stretches real time unevenly.
  std::chrono::steady_clock::time_point (*now)() = [] { return std::chrono::steady_clock::now(); };
};

class client_session final : public core::subscriber, public engine::user_connection {
 public:
  client_session(session_services& services, client_transport& transport);
  ~client_session() override;
  client_session(const client_session&) = delete;
  client_session& operator=(const client_session&) = delete;

  void on_text(std::string_view text);
  void on_binary();

  // core::subscriber: hands the frame pieces to the transport, which applies the slow-consumer policy.
  void deliver(const core::publication_ptr& pub, std::uint64_t seq) override;

  // Leaves every channel now (the connection is closing): nothing more is delivered to it.
  void drop_subscriptions();

  // engine::user_connection: the server API (PROTOCOL "(ext) Server API").
  void disconnect_by_server() override;
  void unsubscribe_by_server(std::string_view channel) override;
  // The connection's id in presence (empty before auth).
  const std::string& client_id() const { return member_.client_id; }

  // Shutdown: publishes from now on answer Unavailable. The transport sends its close frame once
  // publishes_in_flight() is 0, so that every publish already handed to the broker gets its answer first.
  void begin_drain() { draining_ = true; }
  std::size_t publishes_in_flight() const { return publishes_in_flight_; }

  bool authenticated() const { return authenticated_; }
  // Unix seconds after which the connection must be closed with 4001 (exp + leeway); 0 before auth.
  std::int64_t expires_at() const { return expires_at_; }
  std::size_t subscription_count() const { return subscriptions_.size(); }

 private:
  enum class admission { admitted, refused, closed };
  // Takes a token from the bucket. `refused` means the caller answers ResourceExhausted; `closed` means this
  // refusal was one too many and the connection is closing.
  admission admit();
  void dispatch(request& req);
  void do_auth(request& req);
  // The request's channel when the session is authenticated and the name valid; else replies the error.
  std::optional<std::string_view> authenticated_channel(const request& req);
  void do_subscribe(request& req);
  // The subscribe's answer, once the engine has the position (and the replay): back on this thread.
  void finish_subscribe(std::uint64_t id, std::string_view id_json, const engine::subscribe_answer& answer);
  void do_history(request& req);
  // presence and presenceStats: the permission to subscribe, on a channel that keeps presence.
  void do_presence(request& req, bool stats);
  // The checks history and presence share: authenticated, valid channel, the permission to subscribe.
  std::optional<std::string_view> readable_channel(const request& req);
  void do_unsubscribe(request& req);
  // True when the reply goes through the publisher's callback, which observes the latency; false when it was
  // refused here and answered at once.
  bool do_publish(request& req, std::chrono::steady_clock::time_point start);
  void observe_latency(method m, std::chrono::steady_clock::time_point start);
  void do_heartbeat(request& req);
  void reply(const request& req, std::string_view result_json);
  void reply_error(std::string_view id_json, error_code code, std::string_view message);
  // Drops subscriptions the current claims no longer authorize (after a refresh).
  void prune_subscriptions();
  // The one way out of a subscription (unsubscribe, refresh, close): returns the next one.
  std::vector<std::unique_ptr<core::subscription>>::iterator leave(
      std::vector<std::unique_ptr<core::subscription>>::iterator it);
  std::vector<std::unique_ptr<core::subscription>>::iterator find_subscription(std::string_view channel);

  session_services& services_;
  client_transport& transport_;
  bool authenticated_ = false;
  std::int64_t expires_at_ = 0;
  auth::claims claims_;
  core::presence_member member_;  // this connection in presence: client id, sub, info; set by the first auth
  std::vector<std::unique_ptr<core::subscription>> subscriptions_;
  double tokens_ = -1;  // the bucket; -1 until the first request fills it
  std::chrono::steady_clock::time_point refilled_{};
  unsigned violations_ = 0;
  std::size_t publishes_in_flight_ = 0;  // handed to the publisher, answer not yet sent
  struct early_answer {
    std::uint64_t id;
    std::string id_json;
    engine::subscribe_answer answer;
  };
  bool subscribing_ = false;  // inside engine.subscribe(): an answer now is kept in early_answer_
  std::optional<early_answer> early_answer_;
  bool draining_ = false;
};

}  // namespace bc::protocol
