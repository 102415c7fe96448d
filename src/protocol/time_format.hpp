#pragma once

#include <cstdint>
#include <string>

namespace bc::protocol {

// Unix milliseconds now, from the system clock (timestamps are wall-clock by contract).
std::int64_t now_unix_ms();

// RFC 3339, UTC, millisecond precision, 'Z' suffix: "2026-01-01T12:00:00.123Z" (always 24 characters).
std::string format_rfc3339_ms(std::int64_t unix_ms);

}  // namespace bc::protocol
