#include "net/ws/message_deflater.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <string>

#include "net/ws/message_inflater.hpp"
#include "net/ws/stored_block.hpp"

namespace bc::ws {
namespace {

// An independent check: zlib's inflate with a fresh stream, as a client does it (RFC 7692 7.2.2).
std::string client_inflate(std::string in) {
  in.append("\x00\x00\xff\xff", 4);
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, -15), Z_OK);
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  char buf[4096];
  int r = Z_OK;
  while (r == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    r = inflate(&zs, Z_SYNC_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
    if (zs.avail_in == 0 && zs.avail_out != 0) break;
  }
  EXPECT_TRUE(r == Z_OK || r == Z_BUF_ERROR) << r;
  EXPECT_EQ(zs.avail_in, 0u);
  inflateEnd(&zs);
  return out;
}

std::string json_tail(std::size_t payload, std::mt19937& rng) {
  std::string t =
      R"(,"id":"01939a5c-7b2e-7c4a-9d1e-3f2a1b0c9d8e","createTime":"2026-12-05T08:30:00.123Z",)"
      R"("channel":"chat:room-42","offset":1234,"epoch":"a1b2","event":"message","payload":{"t":")";
  const char* words[] = {"hello", "world", "price", "42", "\\u00e9", "ok", "quote", " "};
  while (t.size() < payload) t += words[rng() % 8];
  return t + "\"}}}";
}

std::string with_stored_prefix(std::string_view prefix, std::string_view deflated_tail) {
  std::string out(prefix.size() + stored_blocks_overhead(prefix.size()), '\0');
  write_stored_blocks(reinterpret_cast<std::uint8_t*>(out.data()), prefix);
  out.append(deflated_tail);
  return out;
}

TEST(message_deflater, output_drops_the_sync_flush_tail_and_inflates_back) {
  message_deflater d(6);
  std::mt19937 rng(7);
  for (std::size_t n : {0u, 1u, 10u, 200u, 1024u, 5000u, 70000u}) {
    const std::string text = json_tail(n, rng);
    std::string out = "keep";  // appends
    ASSERT_TRUE(d.compress(text, out));
    ASSERT_EQ(out.substr(0, 4), "keep");
    EXPECT_EQ(client_inflate(out.substr(4)), text) << n;
  }
}

TEST(message_deflater, empty_input_is_one_byte) {
  message_deflater d(6);
  std::string out;
  ASSERT_TRUE(d.compress("", out));
  EXPECT_EQ(out, std::string(1, '\0'));  // an empty stored block's first byte; the receiver adds the rest
  EXPECT_EQ(client_inflate(out), "");
}

TEST(message_deflater, each_message_is_a_fresh_stream) {
  // Compressing the same text twice gives the same bytes: nothing from the first message is referred to.
  message_deflater d(6);
  std::string a, b;
  ASSERT_TRUE(d.compress("the same message, the same message", a));
  ASSERT_TRUE(d.compress("the same message, the same message", b));
  EXPECT_EQ(a, b);
}

// The outbound design (docs/design.md "Compression"): head + seq as a stored block made per delivery,
// followed by the tail deflated once, is one valid message that inflates to head + seq + tail.
TEST(message_deflater, stored_head_and_seq_then_shared_deflated_tail_inflate_to_the_frame) {
  message_deflater d(6);
  std::mt19937 rng(11);
  const std::string head = R"({"method":"broadcast","params":{"seq":)";
  for (std::size_t n : {0u, 1u, 50u, 127u, 1024u, 4096u, 65535u, 100000u}) {
    const std::string tail = n == 0 ? std::string() : json_tail(n, rng);
    std::string deflated;
    ASSERT_TRUE(d.compress(tail, deflated));
    for (std::uint64_t seq : {1ull, 9ull, 10ull, 12345ull, 18446744073709551615ull}) {
      const std::string prefix = head + std::to_string(seq);
      const std::string wire = with_stored_prefix(prefix, deflated);
      EXPECT_EQ(client_inflate(wire), prefix + tail) << n << " " << seq;
    }
  }
}

TEST(message_deflater, a_prefix_beyond_one_stored_block_is_split) {
  message_deflater d(1);
  std::string prefix(150000, '\0');
  for (std::size_t i = 0; i < prefix.size(); ++i) prefix[i] = static_cast<char>(i % 253);
  std::string deflated;
  ASSERT_TRUE(d.compress("and the shared tail", deflated));
  EXPECT_EQ(client_inflate(with_stored_prefix(prefix, deflated)), prefix + "and the shared tail");
}

TEST(message_deflater, compresses_json_well) {
  message_deflater d(6);
  std::mt19937 rng(3);
  const std::string text = json_tail(1024, rng);
  std::string out;
  ASSERT_TRUE(d.compress(text, out));
  EXPECT_LT(out.size(), text.size() / 2);
}

}  // namespace
}  // namespace bc::ws
