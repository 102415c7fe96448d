#include "net/deflate_context.hpp"

#include "net/ws/stored_block.hpp"

namespace bc::net {

namespace {
// An inflate buffer larger than this is given back after its message, so that one big message does not pin
// its size on the thread for good.
constexpr std::size_t keep_inflated = 256 * 1024;
}  // namespace

ws::message_deflater& deflate_context::deflater() {
  if (!deflater_) deflater_ = std::make_unique<ws::message_deflater>(level_);
  return *deflater_;
}

const std::string& deflate_context::deflated_tail(const core::publication& pub) {
  return pub.compressed_tail.get([&] {
    std::string out;
    if (pub.head.size() + pub.tail.size() < min_size_) return out;
    // Compressed, a subscriber's frame is a stored block (5 bytes + head + seq) and this; uncompressed, it is
    // head + seq + tail. Not smaller: everyone gets the plain frame.
    if (!deflater().compress(pub.tail, out) || out.size() + ws::stored_block_header >= pub.tail.size())
      out.clear();
    return out;
  });
}

std::string deflate_context::deflate_message(std::string_view text) {
  std::string out;
  if (text.size() < min_size_) return out;
  if (!deflater().compress(text, out) || out.size() >= text.size()) out.clear();
  return out;
}

ws::message_inflater::status deflate_context::inflate(std::string_view deflated, std::size_t max_bytes,
                                                      std::string_view& out) {
  if (!inflater_) inflater_ = std::make_unique<ws::message_inflater>();
  if (inflated_.capacity() > keep_inflated) std::string().swap(inflated_);
  const auto s = inflater_->inflate(deflated, max_bytes, inflated_);
  out = inflated_;
  return s;
}

}  // namespace bc::net
