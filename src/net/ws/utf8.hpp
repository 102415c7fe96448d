#pragma once

#include <cstdint>
#include <string_view>

namespace bc::ws {

// Strict UTF-8 check for text messages and close reasons (RFC 3629): no overlong forms, no surrogates
// (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequence at the end.
bool is_valid_utf8(std::string_view text);

// Streaming form of the same check, so the frame parser can reject a bad text message as soon as the bad
// byte arrives (RFC 6455 8.1 "fail fast") and accept a code point split across fragments or reads.
class utf8_validator {
 public:
  // Validates the next piece. Returns false once any invalid byte has been seen (sticky).
  bool feed(std::string_view piece);
  // True when everything fed so far is valid and no multi-byte sequence is left open.
  bool complete() const { return !failed_ && need_ == 0; }
  void reset() { *this = utf8_validator{}; }

 private:
  std::uint8_t need_ = 0;   // continuation bytes still expected
  std::uint8_t lo_ = 0x80;  // allowed range of the next continuation byte; narrower right after
  std::uint8_t hi_ = 0xBF;  // E0/ED/F0/F4 leads, which is what excludes overlongs and surrogates
  bool failed_ = false;
};

}  // namespace bc::ws
