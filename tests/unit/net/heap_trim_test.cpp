#include "net/heap_trim.hpp"

#include <gtest/gtest.h>

namespace bc::net {
namespace {

TEST(heap_trim, waits_for_enough_handshakes_and_a_quiet_tick) {
  int trims = 0;
  heap_trim t(3, [&] { ++trims; });
  t.handshake_done();
  t.handshake_done();
  EXPECT_FALSE(t.on_tick());  // handshakes in this tick: the storm may go on
  EXPECT_FALSE(t.on_tick());  // quiet, but only two
  t.handshake_done();
  EXPECT_FALSE(t.on_tick());  // the third came in this tick
  EXPECT_TRUE(t.on_tick());   // quiet now: trims once
  EXPECT_EQ(trims, 1);
  EXPECT_FALSE(t.on_tick());  // nothing new since
  EXPECT_EQ(trims, 1);
}

TEST(heap_trim, a_storm_trims_only_after_it_ends) {
  int trims = 0;
  heap_trim t(2, [&] { ++trims; });
  for (int tick = 0; tick < 10; ++tick) {
    for (int i = 0; i < 5; ++i) t.handshake_done();
    EXPECT_FALSE(t.on_tick());
  }
  EXPECT_TRUE(t.on_tick());
  EXPECT_EQ(trims, 1);
}

TEST(heap_trim, the_default_trim_runs) {
  heap_trim t(1);
  t.handshake_done();
  t.on_tick();
  EXPECT_TRUE(t.on_tick());  // malloc_trim(0) itself: must simply return
}

}  // namespace
}  // namespace bc::net
