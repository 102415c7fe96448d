#pragma once

#include <cstdint>

namespace bc::ws {

// RFC 6455 5.2 frame opcodes. Values 3-7 and 11-15 are reserved and rejected by the parser.
enum class opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

// Control frames (close, ping, pong) have the high bit of the opcode set.
constexpr bool is_control(opcode op) {
  return (static_cast<std::uint8_t>(op) & 0x8) != 0;
}

}  // namespace bc::ws
