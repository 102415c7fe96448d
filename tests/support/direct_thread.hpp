#pragma once
// For single-threaded tests and fuzz targets of the protocol: the engine's one worker thread is the caller's,
// and a publish reaches the hub's subscribers synchronously, inside the publish call.

#include "core/hub.hpp"
#include "engine/local_thread.hpp"
#include "engine/thread_engine.hpp"

namespace bc::testing {

struct direct_thread : engine::local_thread {
  explicit direct_thread(core::hub& h) : hub(h) {}
  bool may_have(std::uint64_t hash) const override { return hub.may_have(hash); }
  bool inbox_full() const override { return false; }
  void push(core::publication_ptr pub) override { hub.deliver(pub); }
  void count_refused() override {}
  void count_overflow() override {}
  void control(const broker::control_message& msg) override {
    if (engine) engine->on_control(msg);
  }
  core::hub& hub;
  engine::thread_engine* engine = nullptr;  // set: control messages reach its connections
};

}  // namespace bc::testing
