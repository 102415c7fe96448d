#pragma once
// The bytes waiting to leave one connection: whole WebSocket frames, each a small inline head plus a view
// into shared immutable memory, drained with one gather-write for everything queued.

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/message.hpp"

namespace bc::net {

class outbound_queue {
 public:
  // Room for a WebSocket header (<= 10), a stored block's header (5), the broadcast head and the seq digits.
  static constexpr std::size_t inline_bytes = 80;

  // A complete text frame holding `text`.
  void push_text(std::string text) { push_text_frame(std::move(text), false); }
  // A complete text frame holding a permessage-deflate payload (RSV1 set).
  void push_compressed_text(std::string deflated) { push_text_frame(std::move(deflated), true); }
  // Bytes sent as they are (the HTTP 101 response that precedes the first frame).
  void push_raw(std::string bytes);
  // A control frame (close/ping/pong); `payload` <= 125 bytes.
  void push_control(std::uint8_t opcode, std::string_view payload);
  // A broadcast frame: head + decimal seq + tail of `pub`, with nothing but the head and digits copied.
  void push_publication(const core::publication_ptr& pub, std::uint64_t seq);
  // Frame size push_publication would add, for the slow-consumer check before queueing.
  static std::size_t publication_frame_bytes(const core::publication& pub, std::uint64_t seq);
  // A broadcast frame compressed with permessage-deflate, with nothing compressed or copied here but the
  // head and digits: a stored (uncompressed) DEFLATE block holding head + decimal seq, then `deflated_tail`,
  // the publication's tail deflated once for every subscriber (deflate_context), which `pub` must own.
  // A presence event (no head, no seq) is its deflated tail alone.
  void push_compressed_publication(const core::publication_ptr& pub, std::uint64_t seq,
                                   std::string_view deflated_tail);
  static std::size_t compressed_frame_bytes(const core::publication& pub, std::uint64_t seq,
                                            std::size_t deflated_tail_bytes);

  // Fills `iov` (at most `max`) with the unsent bytes, in order; returns how many entries it used.
  std::size_t gather(iovec* iov, std::size_t max) const;
  // Marks `n` bytes, from the front, as written.
  void consume(std::size_t n);

  bool empty() const { return head_ == frames_.size(); }
  std::size_t bytes() const { return bytes_; }
  std::size_t frames() const { return frames_.size() - head_; }
  // Heap bytes held by the queue itself (not the shared publications), for memory accounting.
  std::size_t capacity_bytes() const { return frames_.capacity() * sizeof(frame); }

 private:
  struct frame {
    // User-provided, so that emplace_back() does not zero the 80-byte head first (value-initialisation):
    // every push writes the bytes it uses.
    frame() {}                          // NOLINT(modernize-use-equals-default)
    std::shared_ptr<const void> owner;  // keeps `body` alive
    const char* body = nullptr;
    std::uint32_t body_len = 0;
    std::uint32_t sent = 0;  // bytes of head+body already written
    std::uint8_t head_len = 0;
    char head[inline_bytes];
    std::size_t size() const { return head_len + static_cast<std::size_t>(body_len); }
  };
  frame& emplace();
  void push_text_frame(std::string payload, bool compressed);

  std::vector<frame> frames_;
  std::size_t head_ = 0;   // first unsent frame
  std::size_t bytes_ = 0;  // unsent bytes
};

}  // namespace bc::net
