#include "app/thread_scheduling.hpp"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace bc::app {

// Why batch: a woken SCHED_BATCH thread does not preempt the task running on its CPU; it waits for that task
// to sleep or for the next tick. A publish wakes the worker that reads it, which hands the message to the
// other workers, which wake the subscribers' processes: with normal wake-up preemption each of those wake-ups
// can also switch the waker off its CPU in the middle of its fan-out. Measured (BENCHMARKS.md, scenario c):
// a quarter less CPU per delivery and half the p99; no change where workers never sleep (b).
std::string apply_thread_scheduling(std::string_view policy) {
  const int wanted = policy == "batch" ? SCHED_BATCH : SCHED_OTHER;
  sched_param param{};
  param.sched_priority = 0;
  if (::sched_setscheduler(0, wanted, &param) != 0) return std::strerror(errno);
  return {};
}

std::string current_thread_scheduling() {
  switch (const int p = ::sched_getscheduler(0)) {
    case SCHED_BATCH:
      return "batch";
    case SCHED_OTHER:
      return "normal";
    default:
      return std::to_string(p);
  }
}

}  // namespace bc::app
