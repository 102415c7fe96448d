#include "util/prometheus.hpp"

#include <gtest/gtest.h>

#include <string>

namespace bc::util {
namespace {

TEST(prometheus, metric_header_is_help_then_type) {
  std::string out = "x\n";
  append_metric_header(out, "bc_things_total", "counter", "Things, by kind.");
  EXPECT_EQ(out, "x\n# HELP bc_things_total Things, by kind.\n# TYPE bc_things_total counter\n");
}

TEST(prometheus, sample_with_and_without_labels) {
  std::string out;
  append_sample(out, "bc_up", {}, 1);
  append_sample(out, "bc_things_total", R"(kind="a",shard="0")", 18446744073709551615ull);
  EXPECT_EQ(out, "bc_up 1\nbc_things_total{kind=\"a\",shard=\"0\"} 18446744073709551615\n");
}

TEST(prometheus, metric_is_a_header_and_one_unlabelled_sample) {
  std::string out;
  append_metric(out, "bc_connections", "gauge", "Open connections.", 42);
  EXPECT_EQ(out, "# HELP bc_connections Open connections.\n# TYPE bc_connections gauge\nbc_connections 42\n");
}

}  // namespace
}  // namespace bc::util
