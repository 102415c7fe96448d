#include "proc_stats.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>

namespace bc::bench {
namespace {

bool read_small(const std::string& path, std::string& out) {
  std::ifstream f(path);
  if (!f) return false;
  // A process that exits between the open and the read makes the read fail with ESRCH, which libstdc++'s
  // filebuf throws: it aborted a whole run once (bench/run, 2026-12-05). It is simply gone.
  try {
    out.assign(std::istreambuf_iterator<char>(f), {});
  } catch (const std::ios_base::failure&) {
    return false;
  }
  return true;
}

// Fields after the parenthesised command name of /proc/<pid>/stat; index 0 is the state (field 3).
std::vector<std::string> stat_fields(const std::string& stat) {
  std::vector<std::string> out;
  auto p = stat.rfind(')');
  if (p == std::string::npos) return out;
  std::string cur;
  for (std::size_t i = p + 2; i < stat.size(); ++i) {
    if (stat[i] == ' ' || stat[i] == '\n') {
      if (!cur.empty()) out.push_back(cur), cur.clear();
    } else {
      cur += stat[i];
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

template <class F>
void for_each_numeric(const std::string& dir, F&& f) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    f(std::atoi(e->d_name));
  }
  closedir(d);
}

// schedstat: "<ns on cpu> <ns runnable but waiting on a run queue> <timeslices>"; `wait` gets the second.
double process_cpu(pid_t pid, double& wait) {
  double ns_total = 0, ns_wait = 0;
  bool ok = false;
  std::string base = "/proc/" + std::to_string(pid);
  for_each_numeric(base + "/task", [&](int tid) {
    std::string s;
    if (read_small(base + "/task/" + std::to_string(tid) + "/schedstat", s)) {
      char* end = nullptr;
      ns_total += std::strtod(s.c_str(), &end);
      ns_wait += std::strtod(end, nullptr);
      ok = true;
    }
  });
  wait += ns_wait / 1e9;
  if (ok) return ns_total / 1e9;
  std::string s;
  if (!read_small(base + "/stat", s)) return 0;
  auto f = stat_fields(s);
  if (f.size() < 13) return 0;
  return (std::strtod(f[11].c_str(), nullptr) + std::strtod(f[12].c_str(), nullptr)) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::uint64_t process_rss_kib(pid_t pid) {
  std::string s;
  if (!read_small("/proc/" + std::to_string(pid) + "/status", s)) return 0;
  auto p = s.find("VmRSS:");
  if (p == std::string::npos) return 0;
  return std::strtoull(s.c_str() + p + 6, nullptr, 10);
}

std::uint64_t process_fds(pid_t pid) {
  std::uint64_t n = 0;
  for_each_numeric("/proc/" + std::to_string(pid) + "/fd", [&](int) { ++n; });
  return n;
}

}  // namespace

std::vector<pid_t> process_tree(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  for_each_numeric("/proc", [&](int pid) {
    std::string s;
    if (!read_small("/proc/" + std::to_string(pid) + "/stat", s)) return;
    auto f = stat_fields(s);
    if (f.size() > 1) children.emplace(std::atoi(f[1].c_str()), pid);
  });
  std::vector<pid_t> out;
  if (access(("/proc/" + std::to_string(root)).c_str(), F_OK) != 0) return out;
  out.push_back(root);
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto [b, e] = children.equal_range(out[i]);
    for (auto it = b; it != e; ++it) out.push_back(it->second);
  }
  return out;
}

proc_sample sample_tree(pid_t root, bool count_fds) {
  proc_sample s;
  for (pid_t p : process_tree(root)) {
    s.cpu_seconds += process_cpu(p, s.wait_seconds);
    s.rss_kib += process_rss_kib(p);
    if (count_fds) s.open_fds += process_fds(p);
    ++s.processes;
  }
  return s;
}

double machine_busy_seconds() {
  std::string s;
  if (!read_small("/proc/stat", s)) return 0;
  unsigned long long v[10] = {};
  if (std::sscanf(s.c_str(), "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                  &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) < 8)
    return 0;
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  const unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace bc::bench
