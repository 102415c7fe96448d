#include "broker/redis_connection.hpp"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "broker/redis_tls.hpp"

namespace bc::broker {

namespace asio = boost::asio;

redis_connection::redis_connection(asio::io_context& ioc, const redis_endpoint& endpoint,
                                   const redis_options& opts, std::string name, open_handler on_open,
                                   close_handler on_close)
    : ioc_(ioc),
      endpoint_(endpoint),
      opts_(opts),
      name_(std::move(name)),
      on_open_(std::move(on_open)),
      on_close_(std::move(on_close)),
      retry_timer_(ioc),
      handshake_timer_(ioc),
      backoff_(opts.backoff_min),
      rng_(std::random_device{}()) {}

redis_connection::~redis_connection() {
  // Normally stopped already, on the io_context's thread. Closing here runs the pending callbacks.
  stopped_ = true;
  if (link_) std::exchange(link_, nullptr)->close();
}

void redis_connection::start() {
  stopped_ = false;
  connect();
}

void redis_connection::stop() {
  if (stopped_) return;
  stopped_ = true;
  retry_timer_.cancel();
  handshake_timer_.cancel();
  drop("broker stopping");
}

void redis_connection::connect() {
  ++generation_;
  open_ = false;
  if (endpoint_.tls && !opts_.tls_context) return lost("TLS requested but no TLS context was built");
  link_ =
      redis_link::create(ioc_, {endpoint_.host, endpoint_.port, endpoint_.tls ? opts_.tls_context : nullptr});
  link_->connect(
      [this, gen = generation_] {
        if (gen == generation_) opened();
      },
      [this, gen = generation_](const std::string& why) {
        if (gen != generation_ || !link_) return;  // dropped by us: drop() reports the loss itself
        link_.reset();
        lost(why);
      });
  handshake_timer_.expires_after(opts_.connect_timeout);
  handshake_timer_.async_wait([this, gen = generation_](const boost::system::error_code& ec) {
    if (ec || gen != generation_ || !link_ || ready()) return;
    drop("not ready within " + std::to_string(opts_.connect_timeout.count()) + " ms");
  });
}

void redis_connection::opened() {
  open_ = true;
  if (!endpoint_.password.empty()) {
    const bool acl = !endpoint_.username.empty();
    const char* argv[3] = {"AUTH", acl ? endpoint_.username.c_str() : endpoint_.password.c_str(),
                           endpoint_.password.c_str()};
    const size_t len[3] = {4, acl ? endpoint_.username.size() : endpoint_.password.size(),
                           endpoint_.password.size()};
    link_->command_argv(&redis_connection::on_auth_reply, this, acl ? 3 : 2, argv, len);
  }
  on_open_(link_.get());
}

void redis_connection::on_auth_reply(redis_link*, void* reply, void* privdata) {
  auto* self = static_cast<redis_connection*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr || r->type != REDIS_REPLY_ERROR) return;  // null: the link is going away anyway
  spdlog::log(self->failure_level(), "{}: AUTH failed: {}", self->name_, std::string(r->str, r->len));
  self->drop_later("AUTH failed");
}

spdlog::level::level_enum redis_connection::failure_level() const {
  return failures_in_row_ == 0 || failures_in_row_ % 30 == 29 ? spdlog::level::err : spdlog::level::debug;
}

void redis_connection::mark_ready() {
  handshake_timer_.cancel();
  ready_.store(true, std::memory_order_relaxed);
  established_ = true;
  backoff_ = opts_.backoff_min;
  if (ever_ready_) {
    reconnects_.add();
    if (failures_in_row_ == 0) {
      spdlog::info("{}: up again", name_);
    } else {
      spdlog::info("{}: up again (after {} failed attempts)", name_, failures_in_row_);
    }
  } else {
    spdlog::info("{}: up", name_);
  }
  ever_ready_ = true;
  failures_in_row_ = 0;
}

void redis_connection::drop(const std::string& why) {
  if (!link_) return;
  auto link = std::exchange(link_, nullptr);
  going_down();
  link->close();  // runs every pending callback with a null reply; its close handler is not called
  lost(why);
}

void redis_connection::drop_later(std::string why) {
  asio::post(ioc_, [this, gen = generation_, why = std::move(why)] {
    if (gen == generation_) drop(why);
  });
}

void redis_connection::reconnect_now(const std::string& why) {
  if (stopped_) return;
  if (link_) drop(why);
  retry_timer_.cancel();
  backoff_ = opts_.backoff_min;
  if (!link_) connect();
}

void redis_connection::lost(const std::string& why) {
  handshake_timer_.cancel();
  // Not ready(): going_down() clears that as soon as the link starts tearing down, before we get
  // here. A connection that had been ready is a loss, not a failed attempt (not counted, logged once).
  const bool was_established = std::exchange(established_, false);
  const bool was_open = open_;
  ready_.store(false, std::memory_order_relaxed);
  open_ = false;
  if (was_open) on_close_();
  if (stopped_) {
    spdlog::info("{}: closed ({})", name_, why);
    return;
  }
  if (was_established) {
    spdlog::warn("{}: connection lost ({}); reconnecting", name_, why);
  } else {
    ++failures_in_row_;
    connect_failures_.add();
    const auto level =
        failures_in_row_ == 1 || failures_in_row_ % 30 == 0 ? spdlog::level::warn : spdlog::level::debug;
    spdlog::log(level, "{}: cannot connect ({}); attempt {}, retrying with backoff up to {} ms", name_, why,
                failures_in_row_, opts_.backoff_max.count());
  }
  if (on_lost_) on_lost_();
  schedule_retry();
}

void redis_connection::schedule_retry() {
  // Equal jitter: wait somewhere in [d/2, d], so that nodes restarted together do not reconnect in lockstep.
  const auto d = backoff_.count();
  std::uniform_int_distribution<long long> pick(d / 2, d);
  const auto wait = std::chrono::milliseconds(pick(rng_));
  backoff_ = std::min(backoff_ * 2, opts_.backoff_max);
  retry_timer_.expires_after(wait);
  retry_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopped_ && !link_) connect();  // reconnect_now() may have connected already
  });
}

}  // namespace bc::broker
