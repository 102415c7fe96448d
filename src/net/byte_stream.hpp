#pragma once
// Non-blocking byte I/O on one connected socket, in the clear or through TLS. Sessions wait for readiness
// with Asio and then call read()/write() here, so the same session code serves ws:// and wss://.

#include <openssl/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

namespace bc::net {

enum class io_result {
  ok,          // bytes moved (n > 0)
  want_read,   // wait until the socket is readable, then call again
  want_write,  // wait until the socket is writable, then call again
  closed,      // orderly end of stream
  error,       // reset, TLS failure, ...
};

class byte_stream {
 public:
  // A plain stream over `fd` (not owned: the session's Asio socket owns and closes it).
  explicit byte_stream(int fd) : fd_(fd) {}
  // A TLS server stream over `fd`; handshake() must complete before read/write.
  byte_stream(int fd, SSL_CTX* ctx);
  ~byte_stream();
  byte_stream(byte_stream&& other) noexcept;
  byte_stream& operator=(byte_stream&&) = delete;
  byte_stream(const byte_stream&) = delete;

  bool tls() const { return ssl_ != nullptr; }
  io_result handshake();
  io_result read(std::uint8_t* buf, std::size_t cap, std::size_t& n);
  // Writes a prefix of the gathered buffers. With TLS, a write that asked to be retried (want_*) must be
  // retried with the same leading bytes; the caller's queue guarantees that, as it only drops bytes written.
  io_result write(const iovec* iov, std::size_t count, std::size_t& n);
  // TLS only: decrypted bytes waiting inside OpenSSL, which readiness of the socket will not announce.
  bool pending() const;
  // Sends TLS close_notify (best effort) and half-closes the socket.
  void shutdown_send();

 private:
  io_result ssl_result(int ret);

  int fd_;
  SSL* ssl_ = nullptr;
  std::size_t retry_len_ = 0;  // length of a TLS write that must be retried as it was
};

}  // namespace bc::net
