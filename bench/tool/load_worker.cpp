#include "load_worker.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

#include "net/ws/frame_writer.hpp"
#include "net/ws/message_inflater.hpp"

namespace bc::bench {

std::uint64_t now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

namespace {

// Single-writer increment (see latency_histogram::bump).
void inc(std::atomic<std::uint64_t>& a, std::uint64_t v = 1) {
  a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

// 1 -> 127.0.0.1, 254 -> 127.0.0.254, 255 -> 127.0.1.1 ...
in_addr_t loopback_source(int n) {
  const int o3 = (n - 1) / 254, o4 = (n - 1) % 254 + 1;
  return htonl((127u << 24) | (static_cast<unsigned>(o3 & 255) << 8) | static_cast<unsigned>(o4));
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& ch : r) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return r;
}

// `n` bytes of text-like padding, different for every publish: words and numbers drawn from a small
// vocabulary, so that it compresses about as well as chat or price messages do (unlike a run of one letter).
std::string words_text(std::size_t n, std::uint64_t seed) {
  static constexpr const char* words[] = {
      "the",    "price",  "of",    "update", "order",  "user",  "message", "hello", "channel", "status",
      "active", "closed", "bid",   "ask",    "volume", "and",   "a",       "to",    "is",      "in",
      "market", "quote",  "trade", "room",   "typing", "false", "true",    "null",  "level",   "session"};
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  std::string out;
  out.reserve(n + 16);
  while (out.size() < n) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if (x % 4 == 0) {
      out += std::to_string(x % 100000);
    } else {
      out += words[x % std::size(words)];
    }
    out += x % 7 == 0 ? ", " : " ";
  }
  out.resize(n);
  return out;
}

}  // namespace

struct load_worker::connection {
  enum class kind { subscriber, publisher };
  enum class state { unopened, connecting, upgrading, handshaking, subscribed, pub_idle, pub_busy, closed };
  kind k = kind::subscriber;
  state st = state::unopened;
  int fd = -1;
  int index = 0;                // global subscriber index (source address, channel)
  int channel = 0;              // subscribed channel, or the channel of the publish in flight
  int node = 0;                 // subscribers: index into --sub-ports of the node this connection opens
  bool storm = false;           // dropped and reopened in the reconnect storm
  bool storm_reopened = false;  // this is (an attempt at) the reconnection
  std::uint32_t interest = 0;
  std::int64_t last_seq = 0;
  std::string in, out, frag;
  bool deflate = false;          // the server accepted permessage-deflate
  bool frag_compressed = false;  // RSV1 on the first frame of the message being reassembled
  // A server that keeps its compression context across messages (no server_no_context_takeover, e.g. node
  // `ws`) needs an inflate stream per connection; Broadcaster's answer never does.
  std::unique_ptr<z_stream, void (*)(z_stream*)> context{nullptr, [](z_stream* z) {
                                                           inflateEnd(z);
                                                           delete z;
                                                         }};
};

load_worker::load_worker(int id, const bench_options& opt, const peer_protocol& proto, run_state& state,
                         int first_conn, int conn_count, bool publisher)
    : id_(id),
      opt_(opt),
      proto_(proto),
      state_(state),
      first_conn_(first_conn),
      buf_(256 * 1024),
      publisher_(publisher) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  subs_.reserve(static_cast<std::size_t>(conn_count));
  for (int i = 0; i < conn_count; ++i) {
    auto c = std::make_unique<connection>();
    c->index = first_conn + i;
    // Storm subscribers get channels of their own (after the published ones): nobody publishes to them, so
    // the deliveries measured are those of the steady subscribers alone.
    c->storm = opt.in_storm(c->index);
    c->channel = c->index % std::max(1, opt.pub_channels()) + (c->storm ? opt.pub_channels() : 0);
    c->node = opt.node_of(c->index);
    if (c->storm) storm_conns_.push_back(c.get());
    subs_.push_back(std::move(c));
  }
  if (opt.node_count() > 1)
    for (int n = 0; n < opt.node_count(); ++n) node_hist_.push_back(std::make_unique<latency_histogram>());
  if (publisher_) {
    for (int i = 0; i < opt.inflight; ++i) {
      auto c = std::make_unique<connection>();
      c->k = connection::kind::publisher;
      c->index = i;
      pubs_.push_back(std::move(c));
    }
  }
}

load_worker::~load_worker() {
  for (auto* v : {&subs_, &pubs_})
    for (auto& c : *v)
      if (c->fd >= 0) ::close(c->fd);
  if (epfd_ >= 0) ::close(epfd_);
}

std::string load_worker::first_error() const {
  return error_;
}

void load_worker::note_error(const std::string& e) {
  if (error_.empty()) error_ = e;
}

void load_worker::run() {
  for (auto& p : pubs_) open_one(*p);
  epoll_event events[512];
  std::uint64_t pub_start = 0;
  for (;;) {
    const run_phase ph = state_.phase.load(std::memory_order_acquire);
    if (ph == run_phase::done) break;
    if (ph == run_phase::connect) open_more();
    timespec timeout{0, 20 * 1000 * 1000};
    if (!storm_conns_.empty() && state_.storm_phase.load(std::memory_order_acquire) == 1) {
      storm_tick();
      // Paced reopening: come back within a millisecond while some are still to be opened.
      if (storm_next_ < storm_conns_.size() || !storm_retry_.empty()) timeout = {0, 1000 * 1000};
    }
    if (publisher_ && ph == run_phase::publish) {
      if (!pub_start) pub_start = state_.publish_start_us.load();
      publish_tick();
      if (opt_.rate > 0) {
        const auto next_due =
            pub_start + static_cast<std::uint64_t>(static_cast<double>(pub_seq_) * 1e6 / opt_.rate);
        const auto now = now_us();
        // Behind schedule with every publisher busy: an ack (an epoll event) is what lets the next one go.
        const bool all_busy = std::none_of(
            pubs_.begin(), pubs_.end(), [](const auto& p) { return p->st == connection::state::pub_idle; });
        const std::uint64_t wait =
            next_due > now ? std::min<std::uint64_t>(next_due - now, 20000) : (all_busy ? 20000 : 0);
        timeout = {0, static_cast<long>(wait * 1000)};
      }
      if (!storm_conns_.empty() && state_.storm_phase.load(std::memory_order_relaxed) == 1 &&
          (storm_next_ < storm_conns_.size() || !storm_retry_.empty()) && timeout.tv_nsec > 1000 * 1000)
        timeout = {0, 1000 * 1000};
    }
    const int n = epoll_pwait2(epfd_, events, 512, &timeout, nullptr);
    for (int i = 0; i < n; ++i) on_event(*static_cast<connection*>(events[i].data.ptr), events[i].events);
    if (next_open_ == subs_.size() && handshaking_ == 0) counters_.connect_done.store(true);
  }
}

void load_worker::open_more() {
  const int limit = std::max(1, opt_.connect_concurrency / std::max(1, opt_.threads));
  while (handshaking_ < limit && next_open_ < subs_.size()) {
    auto& c = *subs_[next_open_++];
    ++handshaking_;
    if (!open_one(c)) {
      --handshaking_;
      inc(counters_.failed);
    }
  }
}

bool load_worker::open_one(connection& c) {
  c.in.clear();
  c.out.clear();
  c.frag.clear();
  c.deflate = c.frag_compressed = false;
  c.context.reset();
  c.last_seq = 0;
  c.interest = 0;
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    note_error(std::string("socket: ") + std::strerror(errno));
    c.st = connection::state::closed;
    return false;
  }
  int one = 1;
  ::setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_addr.s_addr =
      loopback_source(opt_.source_first + (c.k == connection::kind::subscriber ? c.index % opt_.sources : 0));
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  const int port = c.k == connection::kind::subscriber ? opt_.node_port(c.node) : opt_.proto.port;
  dst.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, opt_.proto.host.c_str(), &dst.sin_addr);
  if (::bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      (::connect(c.fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS)) {
    note_error(std::string("connect: ") + std::strerror(errno));
    ::close(c.fd);
    c.fd = -1;
    c.st = connection::state::closed;
    return false;
  }
  c.st = connection::state::connecting;
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.ptr = &c;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev);
  c.interest = EPOLLOUT;
  if (c.k == connection::kind::subscriber) inc(counters_.opened);
  return true;
}

void load_worker::update_interest(connection& c) {
  if (c.fd < 0) return;
  const std::uint32_t want =
      c.st == connection::state::connecting ? EPOLLOUT : (EPOLLIN | (c.out.empty() ? 0u : EPOLLOUT));
  if (want == c.interest) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.ptr = &c;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
  c.interest = want;
}

void load_worker::on_event(connection& c, std::uint32_t events) {
  if (c.fd < 0) return;
  if (c.st == connection::state::connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      note_error(std::string("connect: ") + std::strerror(err ? err : ECONNRESET));
      close_conn(c, false);
      return;
    }
    on_connected(c);
    return;
  }
  if (events & EPOLLOUT) flush(c);
  if (c.fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
}

void load_worker::on_connected(connection& c) {
  if (c.k == connection::kind::publisher) {
    c.st = connection::state::pub_idle;
    update_interest(c);
    return;
  }
  c.st = connection::state::upgrading;
  std::string req =
      "GET " + proto_.ws_path(c.channel) + " HTTP/1.1\r\nHost: " + opt_.proto.host + ":" +
      std::to_string(opt_.node_port(c.node)) +
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n" +
      std::string(opt_.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                               : "") +
      "\r\n";
  send_raw(c, req);
  update_interest(c);
}

void load_worker::on_readable(connection& c) {
  const ssize_t n = ::read(c.fd, buf_.data(), buf_.size());
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    close_conn(c, true);
    return;
  }
  if (n < 0) return;
  const auto len = static_cast<std::size_t>(n);
  if (c.k == connection::kind::subscriber &&
      state_.phase.load(std::memory_order_relaxed) >= run_phase::publish)
    inc(counters_.wire_bytes, len);
  if (c.in.empty()) {
    const std::size_t used = on_bytes(c, buf_.data(), len);
    if (c.fd >= 0 && used < len) c.in.assign(buf_.data() + used, len - used);
  } else {
    c.in.append(buf_.data(), len);
    const std::size_t used = on_bytes(c, c.in.data(), c.in.size());
    if (c.fd >= 0) c.in.erase(0, used);
  }
}

std::size_t load_worker::on_bytes(connection& c, char* data, std::size_t len) {
  if (c.k == connection::kind::publisher) {
    std::size_t pos = 0;
    while (c.fd >= 0 && pos < len) {
      const std::size_t used = on_http_response(c, data + pos, len - pos);
      if (used == 0) break;
      pos += used;
    }
    return pos;
  }
  std::size_t pos = 0;
  if (c.st == connection::state::upgrading) {
    pos = on_upgrade_response(c, data, len);
    if (c.st == connection::state::upgrading || c.fd < 0) return pos;
  }
  return pos + on_frames(c, data + pos, len - pos);
}

std::size_t load_worker::on_upgrade_response(connection& c, char* data, std::size_t len) {
  const std::string_view s(data, len);
  const auto end = s.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (len > 16384) close_conn(c, false);
    return 0;
  }
  if (!s.starts_with("HTTP/1.1 101")) {
    note_error("upgrade refused: " + std::string(s.substr(0, std::min<std::size_t>(end, 120))));
    close_conn(c, false);
    return len;
  }
  inc(counters_.upgraded);
  const std::string head = lower(s.substr(0, end + 2));
  if (const auto ext = head.find("\r\nsec-websocket-extensions:"); ext != std::string::npos) {
    const std::string value = head.substr(ext, head.find("\r\n", ext + 2) - ext);
    c.deflate = value.find("permessage-deflate") != std::string::npos;
    if (c.deflate) inc(counters_.deflate_agreed);
    if (c.deflate && value.find("server_no_context_takeover") == std::string::npos) {
      c.context.reset(new z_stream{});
      inflateInit2(c.context.get(), -15);
    }
  }
  c.st = connection::state::handshaking;
  for (const auto& m : proto_.on_open(c.channel, c.index)) send_text(c, m);
  if (proto_.subscribed_on_open()) mark_subscribed(c);
  return end + 4;
}

// Server-to-client frames are unmasked (RFC 6455 5.1); the server's own frame_parser insists on masks, so the
// client side reads frames here.
std::size_t load_worker::on_frames(connection& c, char* data, std::size_t len) {
  std::size_t pos = 0;
  while (c.fd >= 0 && len - pos >= 2) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(data + pos);
    const bool fin = p[0] & 0x80;
    const bool rsv1 = p[0] & 0x40;
    const int op = p[0] & 0x0f;
    const bool masked = p[1] & 0x80;
    std::uint64_t plen = p[1] & 0x7f;
    std::size_t hdr = 2;
    if (plen == 126) {
      if (len - pos < 4) break;
      plen = (static_cast<std::uint64_t>(p[2]) << 8) | p[3];
      hdr = 4;
    } else if (plen == 127) {
      if (len - pos < 10) break;
      plen = 0;
      for (int i = 0; i < 8; ++i) plen = (plen << 8) | p[2 + i];
      hdr = 10;
    }
    std::array<std::uint8_t, 4> key{};
    if (masked) {
      if (len - pos < hdr + 4) break;
      std::memcpy(key.data(), p + hdr, 4);
      hdr += 4;
    }
    if (len - pos < hdr + plen) break;
    char* payload = data + pos + hdr;
    if (masked) ws::apply_mask(reinterpret_cast<std::uint8_t*>(payload), plen, key);
    const std::string_view body(payload, plen);
    pos += hdr + plen;
    if (op == 0x1 || op == 0x2 || op == 0x0) {
      if (op != 0x0) c.frag_compressed = rsv1;
      if (fin && c.frag.empty()) {
        on_message(c, body, c.frag_compressed);
      } else {
        c.frag.append(body);
        if (fin) {
          std::string whole;
          whole.swap(c.frag);
          on_message(c, whole, c.frag_compressed);
        }
      }
    } else if (op == 0x9) {
      send_frame(c, 0xA, body);
    } else if (op == 0x8) {
      if (c.st != connection::state::subscribed) note_error("server closed during handshake");
      send_frame(c, 0x8, body.substr(0, 2));
      close_conn(c, true);
      return len;
    }
  }
  return pos;
}

void load_worker::on_message(connection& c, std::string_view payload, bool compressed) {
  compressed_ = false;
  if (!compressed) return on_text(c, payload);
  if (!c.deflate) {
    note_error("compressed message without permessage-deflate");
    return close_conn(c, false);
  }
  compressed_ = true;  // counted if it turns out to be a delivery
  if (!c.context) {
    if (inflater_.inflate(payload, 64 << 20, inflated_) != ws::message_inflater::status::ok) {
      note_error("cannot inflate a message");
      return close_conn(c, false);
    }
    return on_text(c, inflated_);
  }
  // Context takeover: the stream continues from the previous message (RFC 7692 7.2.2).
  std::string in(payload);
  in.append("\x00\x00\xff\xff", 4);
  z_stream& z = *c.context;
  z.next_in = reinterpret_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  inflated_.clear();
  char chunk[16384];
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    const int r = ::inflate(&z, Z_SYNC_FLUSH);
    inflated_.append(chunk, sizeof chunk - z.avail_out);
    if (r != Z_OK && r != Z_BUF_ERROR) {
      note_error("cannot inflate a message");
      return close_conn(c, false);
    }
    if (z.avail_in == 0 && z.avail_out != 0) break;
  }
  on_text(c, inflated_);
}

void load_worker::on_text(connection& c, std::string_view text) {
  text_event ev = proto_.on_text(c.channel, text);
  for (const auto& r : ev.replies) send_text(c, r);
  switch (ev.what) {
    case text_event::kind::delivery: {
      const std::uint64_t now = now_us();
      inc(counters_.received);
      if (compressed_) inc(counters_.compressed);
      inc(counters_.received_by_node[static_cast<std::size_t>(c.node)]);
      counters_.last_delivery_us.store(now, std::memory_order_relaxed);
      hist_.record(now > ev.sent_us ? now - ev.sent_us : 0);
      if (opt_.storm > 0)
        storm_hist_[static_cast<std::size_t>(state_.storm_phase.load(std::memory_order_relaxed))].record(
            now > ev.sent_us ? now - ev.sent_us : 0);
      if (!node_hist_.empty())
        node_hist_[static_cast<std::size_t>(c.node)]->record(now > ev.sent_us ? now - ev.sent_us : 0);
      if (ev.seq >= 0) {
        if (ev.seq > c.last_seq + 1)
          inc(counters_.gaps, static_cast<std::uint64_t>(ev.seq - c.last_seq - 1));
        else if (ev.seq <= c.last_seq)
          inc(counters_.out_of_order);
        c.last_seq = std::max(c.last_seq, ev.seq);
      }
      break;
    }
    case text_event::kind::subscribed:
      if (c.st == connection::state::handshaking) mark_subscribed(c);
      break;
    case text_event::kind::notification:
      inc(counters_.notifications);
      break;
    case text_event::kind::failed:
      note_error("server error: " + ev.error);
      if (c.st == connection::state::handshaking) close_conn(c, false);
      break;
    case text_event::kind::none:
      break;
  }
}

void load_worker::send_text(connection& c, std::string_view text) {
  send_frame(c, 0x1, text);
}

void load_worker::send_frame(connection& c, int op, std::string_view payload) {
  mask_state_ ^= mask_state_ << 13;
  mask_state_ ^= mask_state_ >> 17;
  mask_state_ ^= mask_state_ << 5;
  std::array<std::uint8_t, 4> key{};
  std::memcpy(key.data(), &mask_state_, 4);
  std::uint8_t hdr[ws::max_header_bytes];
  const std::size_t h = ws::write_masked_header(hdr, static_cast<ws::opcode>(op), payload.size(), key);
  std::string frame(reinterpret_cast<char*>(hdr), h);
  frame.append(payload);
  ws::apply_mask(reinterpret_cast<std::uint8_t*>(frame.data() + h), payload.size(), key);
  send_raw(c, frame);
}

void load_worker::send_raw(connection& c, std::string_view bytes) {
  if (c.fd < 0) return;
  if (c.out.empty()) {
    const ssize_t n = ::send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(bytes.size())) return;
    if (n < 0 && errno != EAGAIN) {
      close_conn(c, true);
      return;
    }
    c.out.assign(bytes.substr(n < 0 ? 0 : static_cast<std::size_t>(n)));
  } else {
    c.out.append(bytes);
  }
  update_interest(c);
}

void load_worker::flush(connection& c) {
  if (c.out.empty()) return;
  const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
  if (n < 0 && errno != EAGAIN) {
    close_conn(c, true);
    return;
  }
  if (n > 0) c.out.erase(0, static_cast<std::size_t>(n));
  update_interest(c);
}

void load_worker::close_conn(connection& c, bool by_server) {
  if (c.fd < 0) return;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  c.fd = -1;
  const auto was = c.st;
  c.st = connection::state::closed;
  if (c.k == connection::kind::publisher) {
    if (was == connection::state::pub_busy) {
      inc(counters_.pub_errors);
      counters_.pub_inflight.fetch_sub(1, std::memory_order_relaxed);
      note_error("publisher connection closed with a request in flight");
    }
    const auto ph = state_.phase.load();
    if (ph == run_phase::connect || ph == run_phase::idle || ph == run_phase::publish) {
      inc(counters_.pub_reconnects);
      open_one(c);
    }
    return;
  }
  if (was == connection::state::subscribed) {
    if (by_server) inc(counters_.closed);
    state_.subs_per_channel[static_cast<std::size_t>(c.channel)].fetch_sub(1, std::memory_order_relaxed);
  } else if (c.storm_reopened) {
    // A reconnection that failed (refused, reset, closed in the handshake): a client would try again.
    --handshaking_;
    inc(counters_.storm_retries);
    if (state_.storm_phase.load(std::memory_order_relaxed) == 1)
      storm_retry_.push_back({now_us() + 100000, &c});
  } else {
    inc(counters_.failed);
    --handshaking_;
  }
}

void load_worker::mark_subscribed(connection& c) {
  c.st = connection::state::subscribed;
  --handshaking_;
  const std::uint64_t now = now_us();
  if (c.storm_reopened) {
    inc(counters_.storm_resubscribed);
    counters_.last_storm_sub_us.store(now, std::memory_order_relaxed);
  } else {
    inc(counters_.subscribed);
    inc(counters_.subscribed_by_node[static_cast<std::size_t>(c.node)]);
    counters_.last_subscribe_us.store(now, std::memory_order_relaxed);
  }
  state_.subs_per_channel[static_cast<std::size_t>(c.channel)].fetch_add(1, std::memory_order_relaxed);
}

void load_worker::storm_tick() {
  const std::uint64_t now = now_us();
  const std::uint64_t t0 = state_.storm_start_us.load(std::memory_order_relaxed);
  if (!storm_dropped_) {
    // All at once, as a network blip or a restart drops them: no close frame, the socket just goes.
    storm_dropped_ = true;
    for (auto* c : storm_conns_) drop_for_storm(*c);
  }
  const double spread_us = opt_.storm_spread * 1e6;
  const double part =
      spread_us > 0 ? std::min(1.0, static_cast<double>(now > t0 ? now - t0 : 0) / spread_us) : 1.0;
  const auto due = static_cast<std::size_t>(std::ceil(part * static_cast<double>(storm_conns_.size())));
  while (storm_next_ < due) reopen_for_storm(*storm_conns_[storm_next_++]);
  while (!storm_retry_.empty() && storm_retry_.front().first <= now) {
    connection* c = storm_retry_.front().second;
    storm_retry_.pop_front();
    reopen_for_storm(*c);
  }
}

void load_worker::drop_for_storm(connection& c) {
  if (c.fd < 0) return;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  c.fd = -1;
  if (c.st == connection::state::subscribed) {
    state_.subs_per_channel[static_cast<std::size_t>(c.channel)].fetch_sub(1, std::memory_order_relaxed);
  } else if (c.st != connection::state::closed && c.st != connection::state::unopened) {
    --handshaking_;  // never got subscribed in the connect phase; it gets its chance now
  }
  c.st = connection::state::closed;
}

void load_worker::reopen_for_storm(connection& c) {
  c.storm_reopened = true;
  ++handshaking_;
  if (!open_one(c)) {
    --handshaking_;
    inc(counters_.storm_retries);
    storm_retry_.push_back({now_us() + 100000, &c});
  }
}

void load_worker::publish_tick() {
  const std::uint64_t start = state_.publish_start_us.load();
  std::uint64_t due = UINT64_MAX;
  if (opt_.rate > 0)
    due = static_cast<std::uint64_t>(static_cast<double>(now_us() - start) * opt_.rate / 1e6) + 1;
  // Round-robin over the connections, not "the first idle one": each keep-alive connection then carries a
  // request every inflight/rate seconds, so none sits idle until the server's keep-alive timeout closes it
  // (Broadcaster: --handshake-timeout, 10 s), which costs a reconnect inside the window and, when the close
  // crosses a request being sent, a failed publish.
  const std::size_t n = pubs_.size(), first = pub_next_;
  for (std::size_t k = 0; k < n; ++k) {
    if (pub_seq_ >= due) break;
    const std::size_t i = (first + k) % n;
    auto& p = pubs_[i];
    if (p->st != connection::state::pub_idle) continue;
    // A publish that leaves more than 1 ms after its slot was held back by the in-flight bound.
    if (opt_.rate > 0 &&
        now_us() > start + static_cast<std::uint64_t>(static_cast<double>(pub_seq_) * 1e6 / opt_.rate) + 1000)
      inc(counters_.pub_behind);
    publish_on(*p);
    pub_next_ = (i + 1) % n;
  }
}

void load_worker::publish_on(connection& c) {
  c.channel = pub_channel_rr_;
  pub_channel_rr_ = (pub_channel_rr_ + 1) % std::max(1, opt_.pub_channels());
  std::string payload = "{\"bt\":" + std::to_string(now_us()) + ",\"bn\":" + std::to_string(++pub_seq_);
  if (opt_.payload_bytes > 0 && opt_.payload_words) {
    payload += ",\"bp\":\"" + words_text(static_cast<std::size_t>(opt_.payload_bytes), pub_seq_) + "\"";
  } else if (opt_.payload_bytes > 0) {
    payload += ",\"bp\":\"" + std::string(static_cast<std::size_t>(opt_.payload_bytes), 'x') + "\"";
  }
  payload += "}";
  c.st = connection::state::pub_busy;
  inc(counters_.pub_sent);
  counters_.pub_inflight.fetch_add(1, std::memory_order_relaxed);
  send_raw(c, proto_.publish_request(c.channel, payload));
}

std::size_t load_worker::on_http_response(connection& c, char* data, std::size_t len) {
  const std::string_view s(data, len);
  const auto end = s.find("\r\n\r\n");
  if (end == std::string_view::npos) return 0;
  const std::string head = lower(s.substr(0, end + 2));
  std::size_t total = end + 4;
  bool chunked = false;
  if (auto p = head.find("\r\ncontent-length:"); p != std::string::npos) {
    total += std::strtoull(head.c_str() + p + 17, nullptr, 10);
  } else if (head.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
    chunked = true;
    auto t = s.find("0\r\n\r\n", end + 4);
    if (t == std::string_view::npos) return 0;
    total = t + 5;
  }
  (void)chunked;
  if (len < total) return 0;
  const int status = std::atoi(data + 9);
  counters_.pub_inflight.fetch_sub(1, std::memory_order_relaxed);
  if (status >= 200 && status < 300) {
    inc(counters_.pub_acked);
    inc(counters_.expected,
        state_.subs_per_channel[static_cast<std::size_t>(c.channel)].load(std::memory_order_relaxed));
  } else {
    inc(counters_.pub_errors);
    note_error("publish: " + std::string(s.substr(0, std::min<std::size_t>(total, 200))));
  }
  c.st = connection::state::pub_idle;
  if (head.find("\r\nconnection: close") != std::string::npos) close_conn(c, true);
  return total;
}

}  // namespace bc::bench
