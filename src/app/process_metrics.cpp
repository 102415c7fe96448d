#include "app/process_metrics.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <iterator>

#include "util/prometheus.hpp"

namespace bc::app {

namespace {

std::optional<std::string> read_file(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[4096];
  for (;;) {
    const auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      if (n < 0) return std::nullopt;
      return text;
    }
    text.append(buf, static_cast<std::size_t>(n));
  }
}

std::optional<std::uint64_t> to_u64(std::string_view s) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Splits off the next space-separated token of `rest`.
std::string_view next_token(std::string_view& rest) {
  const auto begin = rest.find_first_not_of(' ');
  if (begin == std::string_view::npos) return rest = {};
  rest.remove_prefix(begin);
  const auto end = std::min(rest.find_first_of(" \n"), rest.size());
  const auto token = rest.substr(0, end);
  rest.remove_prefix(end);
  return token;
}

// The start time never changes, and /proc/stat is long on machines with many CPUs: read it once.
std::optional<double> start_time_seconds(std::uint64_t start_ticks, long ticks_per_second) {
  static const std::optional<std::uint64_t> boot = [] {
    const auto text = read_file("/proc/stat");
    return text ? parse_boot_time(*text) : std::nullopt;
  }();
  if (!boot) return std::nullopt;
  return static_cast<double>(*boot) +
         static_cast<double>(start_ticks) / static_cast<double>(ticks_per_second);
}

void append_real(std::string& out, std::string_view name, std::string_view type, std::string_view help,
                 double value) {
  util::append_metric_header(out, name, type, help);
  fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
}

}  // namespace

std::optional<std::uint64_t> list_open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  const int own = ::dirfd(dir);  // open for the listing only: not counted
  std::uint64_t n = 0;
  while (const dirent* e = ::readdir(dir)) {
    int fd = -1;
    const auto [end, ec] = std::from_chars(e->d_name, e->d_name + std::strlen(e->d_name), fd);
    if (ec == std::errc{} && fd != own) ++n;  // "." and ".." are no numbers
  }
  ::closedir(dir);
  return n;
}

std::optional<std::uint64_t> count_open_fds() {
  // Since Linux 6.2 the size of /proc/self/fd is the number of open descriptors: one system call, where a
  // listing takes time in proportion to the connections (35 ms per 10 000 descriptors where measured), on the
  // worker thread that serves the scrape. Older kernels report 0 and get the listing.
  struct stat st {};
  if (::stat("/proc/self/fd", &st) == 0 && st.st_size > 0) return static_cast<std::uint64_t>(st.st_size);
  return list_open_fds();
}

std::optional<proc_stat> parse_proc_stat(std::string_view text) {
  // The command name (field 2) is in parentheses and may itself hold spaces and ')': the fields that follow
  // start after the last ')'.
  const auto paren = text.rfind(')');
  if (paren == std::string_view::npos) return std::nullopt;
  auto rest = text.substr(paren + 1);
  // 1-based field numbers of proc(5); the first after the name is field 3 (state).
  constexpr int utime = 14, stime = 15, starttime = 22, vsize = 23, rss = 24;
  proc_stat s;
  for (int field = 3; field <= rss; ++field) {
    const auto token = next_token(rest);
    if (token.empty()) return std::nullopt;
    std::uint64_t* into = field == utime       ? &s.utime_ticks
                          : field == stime     ? &s.stime_ticks
                          : field == starttime ? &s.start_ticks
                          : field == vsize     ? &s.vsize_bytes
                          : field == rss       ? &s.rss_pages
                                               : nullptr;
    if (into == nullptr) continue;
    const auto v = to_u64(token);
    if (!v) return std::nullopt;
    *into = *v;
  }
  return s;
}

std::optional<std::uint64_t> parse_boot_time(std::string_view text) {
  constexpr std::string_view key = "btime ";
  for (std::size_t at = 0; at < text.size();) {
    auto line = text.substr(at, text.find('\n', at) - at);
    at += line.size() + 1;
    if (!line.starts_with(key)) continue;
    line.remove_prefix(key.size());
    return to_u64(next_token(line));
  }
  return std::nullopt;
}

std::optional<process_sample> read_process_sample() {
  static const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  static const long page_size = ::sysconf(_SC_PAGESIZE);
  const auto text = read_file("/proc/self/stat");
  if (!text || ticks_per_second <= 0 || page_size <= 0) return std::nullopt;
  const auto stat = parse_proc_stat(*text);
  const auto fds = count_open_fds();
  if (!stat || !fds) return std::nullopt;
  const auto start = start_time_seconds(stat->start_ticks, ticks_per_second);
  if (!start) return std::nullopt;
  process_sample p;
  p.cpu_seconds =
      static_cast<double>(stat->utime_ticks + stat->stime_ticks) / static_cast<double>(ticks_per_second);
  p.resident_bytes = stat->rss_pages * static_cast<std::uint64_t>(page_size);
  p.virtual_bytes = stat->vsize_bytes;
  p.open_fds = *fds;
  // The same number as /proc/self/limits' "Max open files", for one system call instead of a file to parse.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) p.max_fds = rl.rlim_cur;
  p.start_time_seconds = *start;
  return p;
}

void append_process_metrics(std::string& out) {
  const auto p = read_process_sample();
  if (!p) return;
  append_real(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
              p->cpu_seconds);
  util::append_metric(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                      p->resident_bytes);
  util::append_metric(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                      p->virtual_bytes);
  util::append_metric(out, "process_open_fds", "gauge", "Number of open file descriptors.", p->open_fds);
  util::append_metric(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                      p->max_fds);
  append_real(out, "process_start_time_seconds", "gauge",
              "Start time of the process since unix epoch in seconds.", p->start_time_seconds);
}

}  // namespace bc::app
