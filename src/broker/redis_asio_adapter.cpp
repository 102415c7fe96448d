#include "broker/redis_asio_adapter.hpp"

#include <hiredis/async.h>

namespace bc::broker {

namespace asio = boost::asio;

namespace {
redis_asio_adapter* self_of(void* p) {
  return static_cast<redis_asio_adapter*>(p);
}
}  // namespace

bool redis_asio_adapter::attach(asio::io_context& ioc, redisAsyncContext* ac) {
  std::shared_ptr<redis_asio_adapter> self(new redis_asio_adapter(ioc, ac));
  if (!self->fd_.is_open()) return false;
  self->self_ = self;
  ac->ev.data = self.get();
  // Hooks are plain function pointers; these lambdas capture nothing.
  ac->ev.addRead = [](void* p) { self_of(p)->add_read(); };
  ac->ev.delRead = [](void* p) { self_of(p)->del_read(); };
  ac->ev.addWrite = [](void* p) { self_of(p)->add_write(); };
  ac->ev.delWrite = [](void* p) { self_of(p)->del_write(); };
  ac->ev.cleanup = [](void* p) { self_of(p)->cleanup(); };
  return true;
}

redis_asio_adapter::redis_asio_adapter(asio::io_context& ioc, redisAsyncContext* ac) : ac_(ac), fd_(ioc) {
  boost::system::error_code ec;
  fd_.assign(ac->c.fd, ec);
}

redis_asio_adapter::~redis_asio_adapter() {
  // The fd is hiredis's: never let the descriptor close it.
  if (fd_.is_open()) fd_.release();
}

void redis_asio_adapter::add_read() {
  reading_ = true;
  do_wait_read();
}

void redis_asio_adapter::add_write() {
  writing_ = true;
  do_wait_write();
}

void redis_asio_adapter::cleanup() {
  auto keep = std::move(self_);  // `this` stays valid until the end of this call
  if (ac_) {
    // hiredis may call cleanup again (disconnect, then free): make every later hook a no-op.
    ac_->ev.addRead = ac_->ev.delRead = ac_->ev.addWrite = ac_->ev.delWrite = nullptr;
    ac_->ev.cleanup = nullptr;
    ac_->ev.data = nullptr;
    ac_ = nullptr;
  }
  reading_ = writing_ = false;
  if (fd_.is_open()) fd_.release();  // cancels waits in flight; they complete with operation_aborted
}

void redis_asio_adapter::do_wait_read() {
  if (!ac_ || read_waiting_) return;
  read_waiting_ = true;
  fd_.async_wait(asio::posix::stream_descriptor::wait_read,
                 [self = shared_from_this()](const boost::system::error_code& ec) { self->on_readable(ec); });
}

void redis_asio_adapter::on_readable(const boost::system::error_code& ec) {
  read_waiting_ = false;
  if (ec || !ac_ || !reading_) return;
  redisAsyncHandleRead(ac_);  // may free the context: cleanup() then nulls ac_
  if (ac_ && reading_) do_wait_read();
}

void redis_asio_adapter::do_wait_write() {
  if (!ac_ || write_waiting_) return;
  write_waiting_ = true;
  fd_.async_wait(asio::posix::stream_descriptor::wait_write,
                 [self = shared_from_this()](const boost::system::error_code& ec) { self->on_writable(ec); });
}

void redis_asio_adapter::on_writable(const boost::system::error_code& ec) {
  write_waiting_ = false;
  if (ec || !ac_ || !writing_) return;
  redisAsyncHandleWrite(ac_);  // connects, flushes the output buffer, or fails and frees the context
  if (ac_ && writing_) do_wait_write();
}

}  // namespace bc::broker
