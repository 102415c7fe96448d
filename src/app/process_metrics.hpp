#pragma once
// The standard Prometheus process_* series (what every client library's process collector exports), read from
// procfs, so that dashboards and alert rules written for any Linux target work unchanged for this one.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bc::app {

// The fields of /proc/<pid>/stat the series need, in the kernel's units.
struct proc_stat {
  std::uint64_t utime_ticks = 0;
  std::uint64_t stime_ticks = 0;
  std::uint64_t start_ticks = 0;  // after boot
  std::uint64_t vsize_bytes = 0;
  std::uint64_t rss_pages = 0;
};

// Parses the one line of /proc/<pid>/stat; nullopt when it is not one.
std::optional<proc_stat> parse_proc_stat(std::string_view text);

// The "btime" line of /proc/stat: boot time, Unix seconds.
std::optional<std::uint64_t> parse_boot_time(std::string_view proc_stat_text);

struct process_sample {
  double cpu_seconds = 0;  // user + system
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;      // the soft RLIMIT_NOFILE
  double start_time_seconds = 0;  // Unix time
};

// Open descriptors of this process: the size of /proc/self/fd where the kernel reports it (6.2+), else by
// listing it. list_open_fds() always lists (for the tests).
std::optional<std::uint64_t> count_open_fds();
std::optional<std::uint64_t> list_open_fds();

// This process, now. nullopt without a readable /proc. Thread-safe.
std::optional<process_sample> read_process_sample();

// Appends the six process_* families; nothing when /proc cannot be read, so that a scrape never fails for it.
void append_process_metrics(std::string& out);

}  // namespace bc::app
