// Reads CPU time and resident memory of a process and all its descendants from /proc (Linux only).
#pragma once

#include <sys/types.h>
#include <cstdint>
#include <vector>

namespace bc::bench {

struct proc_sample {
  double cpu_seconds = 0;      // user+system of every thread of every process in the tree
  double wait_seconds = 0;     // time those threads were runnable but waiting for a CPU (schedstat field 2)
  std::uint64_t rss_kib = 0;   // sum of VmRSS over the tree (shared pages counted once per process)
  std::uint64_t open_fds = 0;  // sum of open file descriptors over the tree
  int processes = 0;           // 0 when the root pid is gone
};

// The pid and all its descendants (by ppid), found by one scan of /proc.
std::vector<pid_t> process_tree(pid_t root);

// CPU uses each thread's schedstat (nanoseconds) and falls back to stat's clock ticks.
proc_sample sample_tree(pid_t root, bool count_fds = false);

// CPU seconds the whole machine spent busy (everything but idle and iowait in /proc/stat), summed over cores:
// the run's window minus server and client is what other processes took from the same cores.
double machine_busy_seconds();

// This process's own CPU seconds (getrusage).
double self_cpu_seconds();

}  // namespace bc::bench
