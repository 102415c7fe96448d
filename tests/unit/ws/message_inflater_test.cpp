#include "net/ws/message_inflater.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "net/ws/message_deflater.hpp"
#include "net/ws/stored_block.hpp"

namespace bc::ws {
namespace {

std::string deflate(std::string_view text) {
  message_deflater d(6);
  std::string out;
  EXPECT_TRUE(d.compress(text, out));
  return out;
}

TEST(message_inflater, round_trip_of_many_sizes_with_one_reused_stream) {
  message_inflater inf;
  std::mt19937 rng(5);
  std::string out;
  for (std::size_t n : {0u, 1u, 100u, 1023u, 1024u, 1025u, 40000u, 65536u}) {
    std::string text(n, ' ');
    for (char& c : text) c = "abcdefgh {}\",:"[rng() % 14];
    ASSERT_EQ(inf.inflate(deflate(text), 65536, out), message_inflater::status::ok) << n;
    EXPECT_EQ(out, text) << n;
  }
}

TEST(message_inflater, bound_is_inclusive) {
  message_inflater inf;
  std::string out;
  const std::string text(1000, 'a');
  EXPECT_EQ(inf.inflate(deflate(text), 1000, out), message_inflater::status::ok);
  EXPECT_EQ(out, text);
  EXPECT_EQ(inf.inflate(deflate(text), 999, out), message_inflater::status::too_big);
}

TEST(message_inflater, a_bomb_stops_at_the_bound) {
  // 16 MiB of zeros deflate to about 16 KiB; inflating must stop right after the 64 KiB bound.
  const std::string bomb = deflate(std::string(16 << 20, '\0'));
  ASSERT_LT(bomb.size(), 64u * 1024);
  message_inflater inf;
  std::string out;
  EXPECT_EQ(inf.inflate(bomb, 65536, out), message_inflater::status::too_big);
  EXPECT_LE(out.capacity(), 2u * 65536 + 64);
  // The stream is usable again for the next message.
  EXPECT_EQ(inf.inflate(deflate("next"), 65536, out), message_inflater::status::ok);
  EXPECT_EQ(out, "next");
}

TEST(message_inflater, garbage_is_corrupt) {
  message_inflater inf;
  std::string out;
  // BTYPE=11 is reserved: an immediate data error.
  EXPECT_EQ(inf.inflate("\x07garbage", 1000, out), message_inflater::status::corrupt);
  // A stored block whose NLEN does not match LEN.
  EXPECT_EQ(inf.inflate(std::string("\x00\x05\x00\x00\x00hello", 10), 1000, out),
            message_inflater::status::corrupt);
  EXPECT_EQ(inf.inflate(deflate("fine"), 1000, out), message_inflater::status::ok);
  EXPECT_EQ(out, "fine");
}

TEST(message_inflater, a_final_block_ends_the_message) {
  // A client may end its message with BFINAL set (RFC 7692 7.2.3.4): what follows the final block is not
  // read, and the appended 00 00 ff ff is not needed.
  message_inflater inf;
  std::string out;
  const std::string final_stored(
      "\x01\x03\x00\xfc\xff"
      "abc",
      8);
  EXPECT_EQ(inf.inflate(final_stored, 1000, out), message_inflater::status::ok);
  EXPECT_EQ(out, "abc");
}

TEST(message_inflater, stored_prefix_and_deflated_tail) {
  message_inflater inf;
  std::string out;
  std::string wire(5, '\0');
  write_stored_block_header(reinterpret_cast<std::uint8_t*>(wire.data()), 3);
  wire += "seq" + deflate("tail");
  ASSERT_EQ(inf.inflate(wire, 100, out), message_inflater::status::ok);
  EXPECT_EQ(out, "seqtail");
}

}  // namespace
}  // namespace bc::ws
