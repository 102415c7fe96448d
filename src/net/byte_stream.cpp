#include "net/byte_stream.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace bc::net {

namespace {
// One TLS record's worth: larger writes are cut into several calls anyway.
constexpr std::size_t tls_write_chunk = 16 * 1024;
}  // namespace

byte_stream::byte_stream(int fd, SSL_CTX* ctx) : fd_(fd), ssl_(SSL_new(ctx)) {
  if (!ssl_ || SSL_set_fd(ssl_, fd) != 1) throw std::runtime_error("SSL_new/SSL_set_fd failed");
  SSL_set_accept_state(ssl_);
}

byte_stream::~byte_stream() {
  if (ssl_) SSL_free(ssl_);
}

byte_stream::byte_stream(byte_stream&& other) noexcept
    : fd_(other.fd_), ssl_(std::exchange(other.ssl_, nullptr)), retry_len_(other.retry_len_) {}

io_result byte_stream::ssl_result(int ret) {
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
      return io_result::want_read;
    case SSL_ERROR_WANT_WRITE:
      return io_result::want_write;
    case SSL_ERROR_ZERO_RETURN:
      return io_result::closed;
    default:
      ERR_clear_error();  // the error queue is per thread: leave it clean for the next connection
      return io_result::error;
  }
}

io_result byte_stream::handshake() {
  if (!ssl_) return io_result::ok;
  const int r = SSL_do_handshake(ssl_);
  return r == 1 ? io_result::ok : ssl_result(r);
}

io_result byte_stream::read(std::uint8_t* buf, std::size_t cap, std::size_t& n) {
  n = 0;
  if (ssl_) {
    const int r = SSL_read(ssl_, buf, static_cast<int>(std::min<std::size_t>(cap, 1 << 30)));
    if (r > 0) {
      n = static_cast<std::size_t>(r);
      return io_result::ok;
    }
    return ssl_result(r);
  }
  for (;;) {
    const ssize_t r = ::recv(fd_, buf, cap, 0);
    if (r > 0) {
      n = static_cast<std::size_t>(r);
      return io_result::ok;
    }
    if (r == 0) return io_result::closed;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? io_result::want_read : io_result::error;
  }
}

io_result byte_stream::write(const iovec* iov, std::size_t count, std::size_t& n) {
  n = 0;
  if (ssl_) {
    // OpenSSL takes one buffer: gather up to a record into a per-thread scratch buffer.
    thread_local std::uint8_t scratch[tls_write_chunk];
    std::size_t want = 0;
    const std::size_t limit = retry_len_ ? retry_len_ : tls_write_chunk;
    for (std::size_t i = 0; i < count && want < limit; ++i) {
      const std::size_t take = std::min(iov[i].iov_len, limit - want);
      std::memcpy(scratch + want, iov[i].iov_base, take);
      want += take;
    }
    if (want == 0) return io_result::ok;
    const int r = SSL_write(ssl_, scratch, static_cast<int>(want));
    if (r > 0) {
      retry_len_ = 0;
      n = static_cast<std::size_t>(r);
      return io_result::ok;
    }
    const auto res = ssl_result(r);
    if (res == io_result::want_read || res == io_result::want_write) retry_len_ = want;
    return res;
  }
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = count;
  for (;;) {
    const ssize_t r = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (r >= 0) {
      n = static_cast<std::size_t>(r);
      return io_result::ok;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? io_result::want_write : io_result::error;
  }
}

bool byte_stream::pending() const {
  return ssl_ && SSL_pending(ssl_) > 0;
}

void byte_stream::shutdown_send() {
  if (ssl_ && SSL_is_init_finished(ssl_)) {
    SSL_shutdown(ssl_);  // queue close_notify; no waiting for the peer's
    ERR_clear_error();
  }
  ::shutdown(fd_, SHUT_WR);
}

}  // namespace bc::net
