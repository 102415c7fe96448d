#include "net/ws/message_deflater.hpp"

#include <algorithm>
#include <cstring>

namespace bc::ws {

message_deflater::message_deflater(int level) {
  ready_ = deflateInit2(&zs_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK;
}

message_deflater::~message_deflater() {
  if (ready_) deflateEnd(&zs_);
}

bool message_deflater::compress(std::string_view in, std::string& out) {
  const std::size_t start = out.size();
  if (!ready_ || deflateReset(&zs_) != Z_OK) return false;
  zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs_.avail_in = static_cast<uInt>(in.size());
  // deflateBound covers the blocks; the sync flush adds at most an empty stored block and its alignment.
  std::size_t room = deflateBound(&zs_, static_cast<uLong>(in.size())) + 16;
  std::size_t used = start;
  for (;;) {
    out.resize(used + room);
    zs_.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    zs_.avail_out = static_cast<uInt>(room);
    const int r = deflate(&zs_, Z_SYNC_FLUSH);
    used = out.size() - zs_.avail_out;
    if (r != Z_OK && r != Z_BUF_ERROR) break;
    if (zs_.avail_out != 0) {
      // Everything is out; it ends with the empty stored block 00 00 ff ff that the receiver adds back.
      static constexpr unsigned char sync_tail[4] = {0x00, 0x00, 0xff, 0xff};
      if (used - start < 4 || std::memcmp(out.data() + used - 4, sync_tail, 4) != 0) break;
      out.resize(used - 4);
      return true;
    }
    room = std::max<std::size_t>(room, 64);
  }
  out.resize(start);
  return false;
}

}  // namespace bc::ws
