#pragma once
// Uncompressed ("stored") DEFLATE blocks (RFC 1951 3.2.4), to put bytes that differ per subscriber in front
// of a publication's shared compressed tail without compressing anything per subscriber.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace bc::ws {

// A stored block holds at most 65535 bytes after its 5-byte header.
inline constexpr std::size_t stored_block_max = 65535;
inline constexpr std::size_t stored_block_header = 5;

// Bytes that write_stored_blocks adds to `n` bytes of data: one header per block, none for no data.
constexpr std::size_t stored_blocks_overhead(std::size_t n) {
  return (n + stored_block_max - 1) / stored_block_max * stored_block_header;
}

// Writes `data` as non-final stored blocks (BFINAL=0, BTYPE=00) starting at a byte boundary, as many as
// needed; `out` must hold data.size() + stored_blocks_overhead(data.size()) bytes. Returns the bytes
// written. The result ends byte-aligned, so a fresh raw DEFLATE stream (message_deflater) may follow it:
// the concatenation is one valid permessage-deflate message.
std::size_t write_stored_blocks(std::uint8_t* out, std::string_view data);

// Only the header of one stored block of `len` (<= stored_block_max) bytes: the caller writes the bytes.
void write_stored_block_header(std::uint8_t* out, std::size_t len);

}  // namespace bc::ws
