#include "net/ws/frame_writer.hpp"

#include <algorithm>
#include <cstring>

namespace bc::ws {
namespace {

constexpr std::size_t max_control_payload = 125;

// Writes the first byte and the length field; returns the bytes written (2, 4 or 10).
std::size_t write_base(std::uint8_t* out, opcode op, std::uint64_t len, bool fin, bool rsv1,
                       std::uint8_t mask_bit) {
  out[0] =
      static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | (rsv1 ? 0x40 : 0x00) | static_cast<std::uint8_t>(op));
  if (len < 126) {
    out[1] = static_cast<std::uint8_t>(mask_bit | len);
    return 2;
  }
  if (len <= 0xFFFF) {
    out[1] = mask_bit | 126;
    out[2] = static_cast<std::uint8_t>(len >> 8);
    out[3] = static_cast<std::uint8_t>(len);
    return 4;
  }
  out[1] = mask_bit | 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(len >> (56 - 8 * i));
  return 10;
}

}  // namespace

std::size_t write_header(std::uint8_t* out, opcode op, std::uint64_t payload_len, bool fin, bool compressed) {
  return write_base(out, op, payload_len, fin, compressed, 0x00);
}

std::size_t write_masked_header(std::uint8_t* out, opcode op, std::uint64_t payload_len,
                                std::array<std::uint8_t, 4> key, bool fin, bool compressed) {
  const std::size_t n = write_base(out, op, payload_len, fin, compressed, 0x80);
  std::memcpy(out + n, key.data(), 4);
  return n + 4;
}

void apply_mask(std::uint8_t* data, std::size_t len, std::array<std::uint8_t, 4> key, std::size_t offset) {
  // Rotate the key so that rotated[0] applies to data[0]; then 8-byte blocks keep the same phase.
  std::uint8_t rotated[8];
  for (std::size_t i = 0; i < 8; ++i) rotated[i] = key[(offset + i) & 3];
  std::uint64_t key64;
  std::memcpy(&key64, rotated, 8);  // memory order, so the XOR is byte-wise on any endianness

  std::size_t i = 0;
  for (; len - i >= 32; i += 32) {  // four independent words per iteration; GCC/Clang vectorize this
    std::uint64_t w[4];
    std::memcpy(w, data + i, 32);
    w[0] ^= key64;
    w[1] ^= key64;
    w[2] ^= key64;
    w[3] ^= key64;
    std::memcpy(data + i, w, 32);
  }
  for (; len - i >= 8; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data + i, 8);
    w ^= key64;
    std::memcpy(data + i, &w, 8);
  }
  for (; i < len; ++i) data[i] ^= rotated[i & 7];
}

std::string make_close_payload(close_code code, std::string_view reason) {
  const auto value = static_cast<std::uint16_t>(code);
  if (!is_valid_close_code_on_wire(value)) return {};
  std::size_t cut = std::min(reason.size(), max_control_payload - 2);
  if (cut < reason.size()) {
    // Back off over continuation bytes (10xxxxxx) so we never split a code point.
    while (cut > 0 && (static_cast<std::uint8_t>(reason[cut]) & 0xC0) == 0x80) --cut;
  }
  std::string out;
  out.reserve(2 + cut);
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value & 0xFF));
  out.append(reason.substr(0, cut));
  return out;
}

std::string encode_frame(opcode op, std::string_view payload) {
  std::uint8_t header[max_header_bytes];
  const std::size_t n = write_header(header, op, payload.size());
  std::string out;
  out.reserve(n + payload.size());
  out.append(reinterpret_cast<const char*>(header), n);
  out.append(payload);
  return out;
}

}  // namespace bc::ws
