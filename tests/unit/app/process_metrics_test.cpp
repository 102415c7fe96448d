#include "app/process_metrics.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace bc::app {
namespace {

// A real line (cat's), with a command name that has spaces and parentheses of its own, as a thread may name
// itself.
constexpr std::string_view sample_stat =
    "31686 (bc worker (1) x) R 31682 31682 26167 0 -1 4194304 101 0 0 0 7 3 0 0 20 0 1 0 2317920 3133440 407 "
    "18446744073709551615 94443781484544 94443781504425 140731908791536 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 "
    "94443781520432 94443781522048 94444170493952 140731908794812 140731908794832 140731908794832 "
    "140731908796395 0\n";

TEST(ProcessMetrics, ParsesTheFieldsOfProcStatAfterTheCommandName) {
  const auto s = parse_proc_stat(sample_stat);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->utime_ticks, 7u);
  EXPECT_EQ(s->stime_ticks, 3u);
  EXPECT_EQ(s->start_ticks, 2317920u);
  EXPECT_EQ(s->vsize_bytes, 3133440u);
  EXPECT_EQ(s->rss_pages, 407u);
}

TEST(ProcessMetrics, RefusesWhatIsNotAStatLine) {
  EXPECT_FALSE(parse_proc_stat(""));
  EXPECT_FALSE(parse_proc_stat("31686 cat R 1 2 3"));
  EXPECT_FALSE(parse_proc_stat("31686 (cat) R 31682 31682 26167 0 -1 4194304 101 0 0 0 7 3"));  // cut short
  EXPECT_FALSE(parse_proc_stat("1 (a) R 1 1 1 0 -1 0 0 0 0 0 x 3 0 0 20 0 1 0 5 6 7"));         // utime
  EXPECT_TRUE(parse_proc_stat("1 (a) R 1 1 1 0 -1 0 0 0 0 0 2 3 0 0 20 0 1 0 5 6 7"));          // ends at rss
}

TEST(ProcessMetrics, FindsTheBootTimeInProcStat) {
  const std::string proc_stat =
      "cpu  2255 34 2290 22625563 6290 127 456 0 0 0\n"
      "cpu0 1132 34 1441 11311718 3675 127 438 0 0 0\n"
      "intr 114930548 113199788 3 0 5 263 0 4 [... 149 more numbers]\n"
      "ctxt 1990473\n"
      "btime 1062191376\n"
      "processes 2915\n";
  EXPECT_EQ(parse_boot_time(proc_stat), 1062191376u);
  EXPECT_EQ(parse_boot_time("btime 7"), 7u);  // last line without its newline
  EXPECT_FALSE(parse_boot_time("cpu 1 2 3\nctxt 5\n"));
  EXPECT_FALSE(parse_boot_time("xbtime 5\n"));
}

TEST(ProcessMetrics, RealValuesAreSane) {
  const auto p = read_process_sample();
  ASSERT_TRUE(p) << "no readable /proc/self";
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Started within the last hour, not in the future (btime is whole seconds, start ticks 1/100 s).
  EXPECT_LE(p->start_time_seconds, now + 2);
  EXPECT_GT(p->start_time_seconds, now - 3600);
  EXPECT_GE(p->cpu_seconds, 0);
  EXPECT_LT(p->cpu_seconds, 3600);
  EXPECT_GT(p->resident_bytes, 1u << 20);
  EXPECT_GE(p->virtual_bytes, p->resident_bytes);
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  EXPECT_EQ(p->max_fds, rl.rlim_cur);
  EXPECT_GE(p->open_fds, 3u);  // at least stdin, stdout, stderr
  EXPECT_LE(p->open_fds, p->max_fds);
}

TEST(ProcessMetrics, OpenFdsCountsExactlyTheDescriptorsOpened) {
  const auto before = read_process_sample();
  ASSERT_TRUE(before);
  std::vector<int> fds;
  for (int i = 0; i < 10; ++i) fds.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const auto during = read_process_sample();
  for (const int fd : fds) ::close(fd);
  const auto after = read_process_sample();
  ASSERT_TRUE(during && after);
  EXPECT_EQ(during->open_fds, before->open_fds + 10);
  EXPECT_EQ(after->open_fds, before->open_fds);  // the listing's own descriptor is not counted
}

TEST(ProcessMetrics, TheSizeOfProcSelfFdAndItsListingAgree) {
  // On a kernel before 6.2 both are the listing; from 6.2 on, count_open_fds() takes the fast path.
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(count_open_fds(), list_open_fds());
    fds.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  }
  EXPECT_EQ(*count_open_fds(), *list_open_fds());
  for (const int fd : fds) ::close(fd);
}

TEST(ProcessMetrics, CpuTimeGrowsWithWork) {
  const auto before = read_process_sample();
  ASSERT_TRUE(before);
  // Spin until the kernel has charged at least one tick more: the counter moves, and never backwards.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  volatile std::uint64_t sink = 0;
  double cpu = before->cpu_seconds;
  while (cpu <= before->cpu_seconds && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 1'000'000; ++i) sink = sink + static_cast<std::uint64_t>(i);
    cpu = read_process_sample()->cpu_seconds;
  }
  EXPECT_GT(cpu, before->cpu_seconds);
}

TEST(ProcessMetrics, RendersSixTypedFamilies) {
  std::string out;
  append_process_metrics(out);
  for (const char* family : {"process_cpu_seconds_total counter", "process_resident_memory_bytes gauge",
                             "process_virtual_memory_bytes gauge", "process_open_fds gauge",
                             "process_max_fds gauge", "process_start_time_seconds gauge"}) {
    EXPECT_NE(out.find(std::string("# TYPE ") + family + "\n"), std::string::npos) << family << "\n" << out;
  }
  EXPECT_EQ(out.find("e+"), std::string::npos) << "plain decimals, no exponent:\n" << out;
}

}  // namespace
}  // namespace bc::app
