#include "net/ws/message_inflater.hpp"

#include <algorithm>

namespace bc::ws {

message_inflater::message_inflater() {
  ready_ = inflateInit2(&zs_, -15) == Z_OK;
}

message_inflater::~message_inflater() {
  if (ready_) inflateEnd(&zs_);
}

message_inflater::status message_inflater::inflate(std::string_view in, std::size_t max_bytes,
                                                   std::string& out) {
  out.clear();
  if (!ready_ || inflateReset(&zs_) != Z_OK) return status::corrupt;
  static constexpr char sync_tail[4] = {0x00, 0x00, static_cast<char>(0xff), static_cast<char>(0xff)};
  // One byte over the maximum is enough to know the message is too big.
  const std::size_t limit = max_bytes + 1;
  std::size_t produced = 0;
  ended_ = false;
  status s = run(in, limit, out, produced);
  if (s == status::ok && !ended_) s = run({sync_tail, 4}, limit, out, produced);
  out.resize(std::min(produced, limit));
  if (s == status::ok && produced > max_bytes) s = status::too_big;
  return s;
}

// Feeds `in` until it is consumed and its output taken, growing `out` up to `limit` bytes. A stream that
// ended (a client may finish with a BFINAL block) is ok: nothing after its end is read.
message_inflater::status message_inflater::run(std::string_view in, std::size_t limit, std::string& out,
                                               std::size_t& produced) {
  zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs_.avail_in = static_cast<uInt>(in.size());
  for (;;) {
    if (produced == out.size()) {
      if (produced >= limit) return status::too_big;
      // Grow geometrically from a guess, never past the limit: a bomb cannot make us allocate more.
      const std::size_t want = std::max<std::size_t>({produced * 2, in.size() * 4, 1024});
      out.resize(std::min(want, limit));
    }
    zs_.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs_.avail_out = static_cast<uInt>(out.size() - produced);
    const int r = ::inflate(&zs_, Z_SYNC_FLUSH);
    produced = out.size() - zs_.avail_out;
    if (r == Z_STREAM_END) {
      ended_ = true;
      return status::ok;
    }
    if (r != Z_OK && r != Z_BUF_ERROR) return status::corrupt;
    if (zs_.avail_in == 0 && zs_.avail_out != 0) return status::ok;
    if (r == Z_BUF_ERROR && zs_.avail_out != 0) return status::corrupt;  // no progress with room: stuck
  }
}

}  // namespace bc::ws
