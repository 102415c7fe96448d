#include "net/outbound_queue.hpp"

#include <cassert>
#include <charconv>
#include <cstring>

#include "net/ws/frame_writer.hpp"
#include "net/ws/opcode.hpp"
#include "net/ws/stored_block.hpp"

namespace bc::net {

namespace {
std::size_t digits(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}
}  // namespace

outbound_queue::frame& outbound_queue::emplace() {
  // Reuse the vector from the front once everything before head_ is gone, so a queue that keeps draining
  // never grows; a queue that held a burst gives its memory back when it empties (idle connections hold
  // none).
  if (head_ == frames_.size() && head_ != 0) {
    frames_.clear();
    head_ = 0;
    if (frames_.capacity() > 64) frames_.shrink_to_fit();
  }
  return frames_.emplace_back();
}

void outbound_queue::push_text_frame(std::string payload, bool compressed) {
  auto owned = std::make_shared<const std::string>(std::move(payload));
  frame& f = emplace();
  f.head_len = static_cast<std::uint8_t>(ws::write_header(reinterpret_cast<std::uint8_t*>(f.head),
                                                          ws::opcode::text, owned->size(), true, compressed));
  f.body = owned->data();
  f.body_len = static_cast<std::uint32_t>(owned->size());
  f.owner = std::move(owned);
  bytes_ += f.size();
}

void outbound_queue::push_raw(std::string bytes) {
  if (bytes.empty()) return;
  auto owned = std::make_shared<const std::string>(std::move(bytes));
  frame& f = emplace();
  f.body = owned->data();
  f.body_len = static_cast<std::uint32_t>(owned->size());
  f.owner = std::move(owned);
  bytes_ += f.size();
}

void outbound_queue::push_control(std::uint8_t opcode, std::string_view payload) {
  assert(payload.size() <= 125);
  frame& f = emplace();
  auto* h = reinterpret_cast<std::uint8_t*>(f.head);
  f.head_len =
      static_cast<std::uint8_t>(ws::write_header(h, static_cast<ws::opcode>(opcode), payload.size()));
  if (f.head_len + payload.size() <= inline_bytes) {
    if (!payload.empty()) std::memcpy(f.head + f.head_len, payload.data(), payload.size());
    f.head_len = static_cast<std::uint8_t>(f.head_len + payload.size());
  } else {
    // A long ping payload echoed in a pong: rare enough to pay for an allocation.
    auto owned = std::make_shared<const std::string>(payload);
    f.body = owned->data();
    f.body_len = static_cast<std::uint32_t>(owned->size());
    f.owner = std::move(owned);
  }
  bytes_ += f.size();
}

std::size_t outbound_queue::publication_frame_bytes(const core::publication& pub, std::uint64_t seq) {
  const std::size_t payload = pub.head.size() + (pub.presence_event ? 0 : digits(seq)) + pub.tail.size();
  return payload + (payload < 126 ? 2 : payload < 65536 ? 4 : 10);
}

void outbound_queue::push_publication(const core::publication_ptr& pub, std::uint64_t seq) {
  char num[20];
  // A presence event carries no seq (core::publication): its frame is the tail alone.
  const auto end = pub->presence_event ? num : std::to_chars(num, num + sizeof num, seq).ptr;
  const std::size_t num_len = static_cast<std::size_t>(end - num);
  const std::size_t payload = pub->head.size() + num_len + pub->tail.size();
  frame& f = emplace();
  auto* h = reinterpret_cast<std::uint8_t*>(f.head);
  std::size_t n = ws::write_header(h, ws::opcode::text, payload);
  // The broadcast head is a short constant; it always fits (checked by the encoder's tests).
  assert(n + pub->head.size() + num_len <= inline_bytes);
  std::memcpy(f.head + n, pub->head.data(), pub->head.size());
  n += pub->head.size();
  std::memcpy(f.head + n, num, num_len);
  f.head_len = static_cast<std::uint8_t>(n + num_len);
  f.body = pub->tail.data();
  f.body_len = static_cast<std::uint32_t>(pub->tail.size());
  f.owner = pub;
  bytes_ += f.size();
}

std::size_t outbound_queue::compressed_frame_bytes(const core::publication& pub, std::uint64_t seq,
                                                   std::size_t deflated_tail_bytes) {
  const std::size_t prefix = pub.head.size() + (pub.presence_event ? 0 : digits(seq));
  const std::size_t payload = ws::stored_blocks_overhead(prefix) + prefix + deflated_tail_bytes;
  return payload + (payload < 126 ? 2 : payload < 65536 ? 4 : 10);
}

void outbound_queue::push_compressed_publication(const core::publication_ptr& pub, std::uint64_t seq,
                                                 std::string_view deflated_tail) {
  char num[20];
  const auto end = pub->presence_event ? num : std::to_chars(num, num + sizeof num, seq).ptr;
  const std::size_t num_len = static_cast<std::size_t>(end - num);
  const std::size_t prefix = pub->head.size() + num_len;
  const std::size_t stored = prefix == 0 ? 0 : ws::stored_block_header + prefix;
  frame& f = emplace();
  auto* h = reinterpret_cast<std::uint8_t*>(f.head);
  std::size_t n = ws::write_header(h, ws::opcode::text, stored + deflated_tail.size(), true, true);
  // The head is a short constant, so head + seq is one stored block and fits inline.
  assert(n + stored <= inline_bytes);
  if (prefix != 0) {
    ws::write_stored_block_header(h + n, prefix);
    n += ws::stored_block_header;
    std::memcpy(f.head + n, pub->head.data(), pub->head.size());
    n += pub->head.size();
    std::memcpy(f.head + n, num, num_len);
    n += num_len;
  }
  f.head_len = static_cast<std::uint8_t>(n);
  f.body = deflated_tail.data();
  f.body_len = static_cast<std::uint32_t>(deflated_tail.size());
  f.owner = pub;
  bytes_ += f.size();
}

std::size_t outbound_queue::gather(iovec* iov, std::size_t max) const {
  std::size_t used = 0;
  for (std::size_t i = head_; i < frames_.size() && used < max; ++i) {
    const frame& f = frames_[i];
    std::size_t skip = f.sent;
    if (skip < f.head_len) {
      iov[used++] = {const_cast<char*>(f.head + skip), f.head_len - skip};
      skip = 0;
    } else {
      skip -= f.head_len;
    }
    if (f.body_len > skip && used < max) {
      iov[used++] = {const_cast<char*>(f.body + skip), f.body_len - skip};
    }
  }
  return used;
}

void outbound_queue::consume(std::size_t n) {
  assert(n <= bytes_);
  bytes_ -= n;
  while (n > 0) {
    frame& f = frames_[head_];
    const std::size_t left = f.size() - f.sent;
    if (n < left) {
      f.sent += static_cast<std::uint32_t>(n);
      return;
    }
    n -= left;
    f.owner.reset();  // release the publication as soon as its bytes are out
    ++head_;
  }
  if (head_ == frames_.size()) {
    frames_.clear();
    head_ = 0;
    if (frames_.capacity() > 64) frames_.shrink_to_fit();
  }
}

}  // namespace bc::net
