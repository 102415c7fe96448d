#pragma once
// One worker thread as the engine routes publications to it (implemented by app::shard, which owns the
// thread, its io_context and its hub).

#include <cstdint>

#include "broker/broker.hpp"
#include "core/hub.hpp"
#include "core/message.hpp"

namespace bc::engine {

class local_thread {
 public:
  virtual ~local_thread() = default;
  // Any thread: whether the thread's hub may hold subscribers of the channel (core::hub::may_have).
  virtual bool may_have(std::uint64_t channel_hash) const = 0;
  // Any thread: the thread's inbox is at its byte limit (a hint: others push meanwhile).
  virtual bool inbox_full() const = 0;
  // Any thread: queue `pub` for the thread's hub; it is delivered on that thread, in push order.
  virtual void push(core::publication_ptr pub) = 0;
  // Any thread: a publish was refused / a broker message was queued over the limit because of this inbox.
  virtual void count_refused() = 0;
  virtual void count_overflow() = 0;
  // Any thread: run `msg` on the thread (thread_engine::on_control), after what is queued there already.
  virtual void control(const broker::control_message& msg) = 0;
};

}  // namespace bc::engine
