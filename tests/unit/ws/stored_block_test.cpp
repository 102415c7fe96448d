#include "net/ws/stored_block.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

namespace bc::ws {
namespace {

// zlib's own raw inflate of a permessage-deflate payload (RFC 7692 7.2.2: 00 00 ff ff appended).
std::string inflate_raw(std::string in) {
  in.append("\x00\x00\xff\xff", 4);
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, -15), Z_OK);
  std::string out(in.size() + 1024, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int r = inflate(&zs, Z_SYNC_FLUSH);
  EXPECT_TRUE(r == Z_OK || r == Z_STREAM_END) << r;
  EXPECT_EQ(zs.avail_in, 0u);
  out.resize(out.size() - zs.avail_out);
  inflateEnd(&zs);
  return out;
}

std::string stored(std::string_view data) {
  std::string out(data.size() + stored_blocks_overhead(data.size()), '\0');
  EXPECT_EQ(write_stored_blocks(reinterpret_cast<std::uint8_t*>(out.data()), data), out.size());
  return out;
}

TEST(stored_block, header_bytes) {
  std::uint8_t h[5];
  write_stored_block_header(h, 0x1234);
  EXPECT_EQ(std::vector<std::uint8_t>(h, h + 5), (std::vector<std::uint8_t>{0x00, 0x34, 0x12, 0xcb, 0xed}));
}

TEST(stored_block, overhead_is_one_header_per_65535_bytes) {
  EXPECT_EQ(stored_blocks_overhead(0), 0u);
  EXPECT_EQ(stored_blocks_overhead(1), 5u);
  EXPECT_EQ(stored_blocks_overhead(65535), 5u);
  EXPECT_EQ(stored_blocks_overhead(65536), 10u);
  EXPECT_EQ(stored_blocks_overhead(3 * 65535), 15u);
  EXPECT_EQ(stored_blocks_overhead(3 * 65535 + 1), 20u);
}

TEST(stored_block, zlib_inflates_stored_blocks_of_every_size_class) {
  for (std::size_t n : {1u, 2u, 80u, 65534u, 65535u, 65536u, 131070u, 131071u, 200000u}) {
    std::string data(n, '\0');
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<char>(i * 7 + i / 251);
    EXPECT_EQ(inflate_raw(stored(data)), data) << n;
  }
}

}  // namespace
}  // namespace bc::ws
