#include "net/ws/stored_block.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace bc::ws {

void write_stored_block_header(std::uint8_t* out, std::size_t len) {
  assert(len <= stored_block_max);
  // BFINAL=0 and BTYPE=00 are the three low bits of the first byte; the rest of it is padding to the byte
  // boundary. Then LEN and its one's complement NLEN, little-endian.
  out[0] = 0x00;
  out[1] = static_cast<std::uint8_t>(len);
  out[2] = static_cast<std::uint8_t>(len >> 8);
  out[3] = static_cast<std::uint8_t>(~len);
  out[4] = static_cast<std::uint8_t>(~len >> 8);
}

std::size_t write_stored_blocks(std::uint8_t* out, std::string_view data) {
  std::size_t n = 0;
  while (!data.empty()) {
    const std::size_t len = std::min(data.size(), stored_block_max);
    write_stored_block_header(out + n, len);
    std::memcpy(out + n + stored_block_header, data.data(), len);
    n += stored_block_header + len;
    data.remove_prefix(len);
  }
  return n;
}

}  // namespace bc::ws
