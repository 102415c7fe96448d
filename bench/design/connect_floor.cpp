// The least CPU a server can spend on a connection in the connect benchmark, for BENCHMARKS.md (issue 20,
// goal 3): what the kernel and the handshake's arithmetic cost with nothing else around them. It speaks just
// enough of two protocols for broadcaster-bench's connect phase (`--rate 0 --duration 0`):
//   - Broadcaster's: the upgrade, then `auth` (the token's HS256 signature checked, as a real server must)
//   and
//     `subscribe`, each answered with a canned reply carrying the request's id;
//   - Nchan's (a path under /sub/): the upgrade alone.
// No channel, no subscription state, no JSON parser, no allocation per connection after the first ones: one
// fixed buffer per connection, epoll edge-triggered with each socket registered once (no re-arm), one accept4
// loop per readiness, one listening socket per thread (SO_REUSEPORT). Anything a real server does beyond this
// is what separates it from the floor; a target ratio against another server below this floor's ratio cannot
// be reached by any server on the same machine with the same client.
//
//   build/bench/connect-floor --port P [--threads 2] [--jwt-secret S] [--no-verify]
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct options {
  int port = 0;
  int threads = 2;
  std::string secret = "bench-secret";
  bool verify = true;
};

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

std::string base64(const unsigned char* data, int n, bool url) {
  std::string out(static_cast<std::size_t>(4 * ((n + 2) / 3)), '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, n);
  out.resize(static_cast<std::size_t>(len));
  if (url) {
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return out;
}

// The token's signature against HMAC-SHA256(secret, header.payload): the work any server must do per auth.
bool signature_ok(const options& o, std::string_view token) {
  const auto dot = token.rfind('.');
  if (dot == std::string_view::npos) return false;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), o.secret.data(), static_cast<int>(o.secret.size()),
       reinterpret_cast<const unsigned char*>(token.data()), dot, mac, &len);
  return base64(mac, static_cast<int>(len), true) == token.substr(dot + 1);
}

// Left uninitialised and recycled (free list), so that a connection costs no page faults of its own: the
// handshake's requests fit in 1 KiB.
struct connection {
  int fd = -1;
  bool upgraded = false;
  std::size_t used = 0;
  std::array<char, 1024> buf;
};

void append_frame(std::string& out, std::string_view text) {
  out.push_back(static_cast<char>(0x81));
  if (text.size() < 126) {
    out.push_back(static_cast<char>(text.size()));
  } else {
    out.push_back(126);
    out.push_back(static_cast<char>(text.size() >> 8));
    out.push_back(static_cast<char>(text.size() & 0xff));
  }
  out.append(text);
}

std::string_view between(std::string_view s, std::string_view from, char to) {
  const auto at = s.find(from);
  if (at == std::string_view::npos) return {};
  const auto start = at + from.size();
  const auto end = s.find(to, start);
  return end == std::string_view::npos ? std::string_view{} : s.substr(start, end - start);
}

// Answers one client frame; false = close the connection.
bool on_text(const options& o, std::string_view text, std::string& out) {
  std::string_view id = between(text, "\"id\":", ',');
  if (id.empty()) id = "0";
  if (text.find("\"auth\"") != std::string_view::npos) {
    if (o.verify && !signature_ok(o, between(text, "\"token\":\"", '"'))) return false;
    append_frame(out, std::string(R"({"requestId":)").append(id).append(R"(,"result":{"success":true}})"));
  } else if (text.find("\"subscribe\"") != std::string_view::npos) {
    append_frame(out,
                 std::string(R"({"requestId":)")
                     .append(id)
                     .append(R"(,"result":{"subscriptionId":"s1","timestamp":"2026-01-01T00:00:00.000Z"}})"));
  }
  return true;
}

// Consumes what the buffer holds; false = close.
bool on_bytes(const options& o, connection& c, std::string& out) {
  std::size_t at = 0;
  if (!c.upgraded) {
    const std::string_view head(c.buf.data(), c.used);
    const auto end = head.find("\r\n\r\n");
    if (end == std::string_view::npos) return c.used < c.buf.size();
    std::string_view key = between(head, "Sec-WebSocket-Key: ", '\r');
    if (key.empty()) key = between(head, "sec-websocket-key: ", '\r');
    if (key.empty()) return false;
    std::string material(key);
    material += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(material.data()), material.size(), sha);
    out +=
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
        "Upgrade\r\nSec-WebSocket-Accept: ";
    out += base64(sha, SHA_DIGEST_LENGTH, false);
    out += "\r\n\r\n";
    c.upgraded = true;
    at = end + 4;
  }
  for (;;) {
    const auto* p = reinterpret_cast<unsigned char*>(c.buf.data()) + at;
    const std::size_t left = c.used - at;
    if (left < 2) break;
    const int opcode = p[0] & 0x0f;
    std::size_t len = p[1] & 0x7f, hdr = 2;
    if (len == 126) {
      if (left < 4) break;
      len = (std::size_t{p[2]} << 8) | p[3];
      hdr = 4;
    } else if (len == 127) {
      return false;  // nothing in this benchmark sends 64 KiB frames
    }
    const bool masked = (p[1] & 0x80) != 0;
    if (masked) hdr += 4;
    if (left < hdr + len) break;
    char* payload = c.buf.data() + at + hdr;
    if (masked)
      for (std::size_t i = 0; i < len; ++i) payload[i] = static_cast<char>(payload[i] ^ p[hdr - 4 + (i & 3)]);
    if (opcode == 8) return false;
    if (opcode == 1 && !on_text(o, std::string_view(payload, len), out)) return false;
    at += hdr + len;
  }
  std::memmove(c.buf.data(), c.buf.data() + at, c.used - at);
  c.used -= at;
  return c.used < c.buf.size();
}

void serve(const options& o) {
  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // inherited by accepted sockets
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(o.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (listen(lfd, 4096) != 0) die("listen");
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the listener
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::vector<epoll_event> events(256);
  std::vector<connection*> spare;
  std::string out;
  for (;;) {
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<connection*>(events[static_cast<std::size_t>(i)].data.ptr);
      if (c == nullptr) {
        for (;;) {
          const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          connection* nc = spare.empty() ? new connection : spare.back();
          if (!spare.empty()) spare.pop_back();
          nc->fd = fd;
          nc->upgraded = false;
          nc->used = 0;
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
          cev.data.ptr = nc;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      bool keep = (events[static_cast<std::size_t>(i)].events & (EPOLLERR | EPOLLHUP)) == 0;
      out.clear();
      while (keep) {
        const ssize_t r = read(c->fd, c->buf.data() + c->used, c->buf.size() - c->used);
        if (r > 0) {
          c->used += static_cast<std::size_t>(r);
          keep = on_bytes(o, *c, out);
          continue;
        }
        if (r == 0) keep = false;
        break;  // EAGAIN (edge-triggered: drained) or an error
      }
      // Replies are a few hundred bytes into an empty socket buffer: written whole or the peer is gone.
      if (keep && !out.empty() && write(c->fd, out.data(), out.size()) != static_cast<ssize_t>(out.size()))
        keep = false;
      if (!keep) {
        close(c->fd);  // also leaves the epoll set
        spare.push_back(c);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (a == "--port")
      o.port = std::atoi(val().c_str());
    else if (a == "--threads")
      o.threads = std::atoi(val().c_str());
    else if (a == "--jwt-secret")
      o.secret = val();
    else if (a == "--no-verify")
      o.verify = false;
    else {
      std::fprintf(stderr, "usage: connect-floor --port P [--threads N] [--jwt-secret S] [--no-verify]\n");
      return 2;
    }
  }
  if (o.port <= 0 || o.threads < 1) {
    std::fprintf(stderr, "connect-floor: --port (1-65535) and --threads (>= 1) are required\n");
    return 2;
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) threads.emplace_back([&o] { serve(o); });
  for (auto& t : threads) t.join();
}
