#pragma once
// The Linux scheduling policy of the server's threads (worker shards and the Redis thread inherit it).

#include <string>
#include <string_view>

namespace bc::app {

// Applies `policy` ("batch" or "normal") to the calling thread, so that every thread it starts afterwards
// inherits it. Returns an empty string, or why the kernel refused (the server then runs with what it has).
std::string apply_thread_scheduling(std::string_view policy);

// The calling thread's policy as the configuration spells it ("batch", "normal", or the kernel's number).
std::string current_thread_scheduling();

}  // namespace bc::app
