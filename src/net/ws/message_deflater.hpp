#pragma once
// Compression of whole messages for permessage-deflate (RFC 7692 7.2.1), one fresh DEFLATE stream each.

#include <zlib.h>

#include <string>
#include <string_view>

namespace bc::ws {

// One zlib deflate stream reused for message after message (deflateReset between them, so no message refers
// to another: server_no_context_takeover). Holds ~256 KiB of zlib state, so it is owned per thread, not
// per connection. Not thread-safe.
class message_deflater {
 public:
  // `level`: zlib's 1 (fastest) .. 9 (smallest).
  explicit message_deflater(int level);
  ~message_deflater();
  message_deflater(const message_deflater&) = delete;
  message_deflater& operator=(const message_deflater&) = delete;

  // Appends to `out` the raw DEFLATE (no zlib header, 32 KiB window) of `in` as a fresh stream, flushed to a
  // byte boundary with Z_SYNC_FLUSH and without the trailing 00 00 ff ff (RFC 7692 7.2.1). The result starts
  // and ends byte-aligned and never sets BFINAL, so it may follow other non-final blocks (stored_block.hpp).
  // Returns false (out restored) if zlib failed, which only happens when it is out of memory.
  bool compress(std::string_view in, std::string& out);

 private:
  z_stream zs_{};
  bool ready_ = false;
};

}  // namespace bc::ws
