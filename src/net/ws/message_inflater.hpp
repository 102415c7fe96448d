#pragma once
// Decompression of client messages sent with permessage-deflate (RFC 7692 7.2.2), bounded in size.

#include <zlib.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace bc::ws {

// One zlib inflate stream reused for message after message (inflateReset between them: the server asks for
// client_no_context_takeover, so no message refers to an earlier one). Its ~40 KiB of state are owned per
// thread, not per connection. Not thread-safe.
class message_inflater {
 public:
  enum class status { ok, too_big, corrupt };

  message_inflater();
  ~message_inflater();
  message_inflater(const message_inflater&) = delete;
  message_inflater& operator=(const message_inflater&) = delete;

  // Inflates one message's payload (all its frames, concatenated), after appending 00 00 ff ff, into `out`
  // (replaced). Stops as soon as the output would exceed `max_bytes` (too_big: a decompression bomb costs
  // at most max_bytes + 1 bytes of output and the input's inflation up to there). corrupt: not DEFLATE.
  status inflate(std::string_view in, std::size_t max_bytes, std::string& out);

 private:
  status run(std::string_view in, std::size_t limit, std::string& out, std::size_t& produced);

  z_stream zs_{};
  bool ready_ = false;
  bool ended_ = false;  // the current message's stream reached its final block
};

}  // namespace bc::ws
