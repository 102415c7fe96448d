#pragma once
// Drives one hiredis async context from an Asio io_context.

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <memory>

struct redisAsyncContext;

namespace bc::broker {

// hiredis's event hooks (addRead/delRead/addWrite/delWrite/cleanup) become `async_wait`s on a
// stream_descriptor over the context's socket; when the socket is ready the adapter calls
// redisAsyncHandleRead/Write. There is no polling: a connection costs nothing while idle.
//
// Ownership: hiredis owns the socket and the adapter belongs to the context. `attach` stores the adapter in
// `ac->ev.data` and the adapter keeps itself alive (`self_`) until hiredis calls `cleanup`, which hiredis
// does before it frees the context and closes the fd. `cleanup` releases the descriptor (never closes it),
// unhooks itself from the context and drops the self-reference; a wait still in flight then holds the last
// reference and finishes as a no-op.
//
// Thread-safety: none. The context, and so the adapter, belong to the one thread running the io_context.
class redis_asio_adapter : public std::enable_shared_from_this<redis_asio_adapter> {
 public:
  // Call before redisAsyncSetConnectCallback, which already asks to wait for writability. False when the
  // context's fd cannot be registered with the io_context (the context is left untouched then).
  static bool attach(boost::asio::io_context& ioc, redisAsyncContext* ac);

  ~redis_asio_adapter();
  redis_asio_adapter(const redis_asio_adapter&) = delete;
  redis_asio_adapter& operator=(const redis_asio_adapter&) = delete;

 private:
  redis_asio_adapter(boost::asio::io_context& ioc, redisAsyncContext* ac);

  void add_read();
  void del_read() { reading_ = false; }
  void add_write();
  void del_write() { writing_ = false; }
  void cleanup();

  void do_wait_read();
  void on_readable(const boost::system::error_code& ec);
  void do_wait_write();
  void on_writable(const boost::system::error_code& ec);

  redisAsyncContext* ac_;  // null once cleaned up
  boost::asio::posix::stream_descriptor fd_;
  std::shared_ptr<redis_asio_adapter> self_;
  bool reading_ = false;  // hiredis wants readability events
  bool writing_ = false;
  bool read_waiting_ = false;  // an async_wait is in flight
  bool write_waiting_ = false;
};

}  // namespace bc::broker
