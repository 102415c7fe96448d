#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "net/ws/close_code.hpp"
#include "net/ws/frame_writer.hpp"
#include "net/ws/opcode.hpp"
#include "net/ws/utf8.hpp"

namespace bc::ws {

// Receives parser events. A text/binary message is delivered whole (after reassembly of fragments); control
// frames (ping/pong/close) are delivered as they arrive, also between fragments of a data message.
// Payload views are valid only during the call: they point into the fed buffer or the parser's own buffer.
class frame_handler {
 public:
  virtual ~frame_handler() = default;
  virtual void on_message(opcode op, std::string_view payload) = 0;  // op is text or binary
  // A message sent with RSV1 on a connection that negotiated permessage-deflate (RFC 7692): `deflated` is
  // its payload as received, not inflated, and a text message's UTF-8 is not checked yet (the handler
  // inflates, bounds the size, then checks). Never called by a parser built without compression.
  virtual void on_compressed_message(opcode op, std::string_view deflated) = 0;
  virtual void on_ping(std::string_view payload) = 0;
  virtual void on_pong(std::string_view payload) = 0;
  // code is 1005 (no_status) when the close frame had no body.
  virtual void on_close(std::uint16_t code, std::string_view reason) = 0;
};

// Incremental, socket-free parser of client-to-server frames (RFC 6455 5), one per connection and used by
// that connection's thread only (not thread-safe).
//
// Memory: a frame wholly inside the fed buffer is unmasked in place and handed over as a view of that buffer,
// with no allocation. Only a message that spans feeds or is fragmented is copied into buffer_; a partial
// header waits in a 14-byte inline array. buffer_ grows with bytes actually received, never with a declared
// length, so a client cannot make us allocate max_message_bytes by sending just a header.
class frame_parser {
 public:
  // ok, or the close code the server must send with a short static reason.
  struct result {
    bool ok = true;
    close_code error = close_code::normal;
    std::string_view reason;
  };

  // `max_message_bytes` bounds a message as received (for a compressed one, its compressed size; the
  // handler bounds the inflated size). `compression`: permessage-deflate was negotiated, so RSV1 may mark
  // the first frame of a data message; without it, RSV1 is a protocol error like RSV2 and RSV3.
  explicit frame_parser(std::size_t max_message_bytes = 64 * 1024, bool compression = false);

  // Consumes all of `data` (unmasking in place, hence mutable), calling the handler for each complete message
  // or control frame, possibly several times per feed. Returns the first error (protocol_error,
  // invalid_payload, message_too_big). After an error the parser ignores further input and keeps returning
  // that error; after on_close it ignores further input and returns ok. Not re-entrant: a handler must not
  // call feed() on the same parser.
  result feed(std::span<std::uint8_t> data, frame_handler& handler);

  // No partial frame or message buffered.
  bool idle() const { return !in_payload_ && header_len_ == 0 && !in_message_; }
  // Heap bytes held for partial frames/messages (for memory accounting); 0 when nothing is allocated.
  std::size_t buffered_bytes() const;
  // Frees the internal buffer if it holds no partial data; the session calls this when the connection idles.
  void release_memory();

 private:
  result read_header(std::span<std::uint8_t> data, std::size_t& pos);
  result check_first_bytes(std::uint8_t b0, std::uint8_t b1) const;
  result begin_frame(const std::uint8_t* header);
  result read_payload(std::span<std::uint8_t> data, std::size_t& pos, frame_handler& handler);
  result on_data_chunk(std::string_view chunk, bool whole_frame, frame_handler& handler);
  result on_control_chunk(std::string_view chunk, bool whole_frame, frame_handler& handler);
  result deliver_control(std::string_view payload, frame_handler& handler);
  result deliver_message(std::string_view payload, frame_handler& handler);
  void trim_buffer();
  void reset();

  std::size_t max_message_bytes_;
  std::string buffer_;  // reassembled data message; a control frame spanning feeds is parked at its tail

  // Current frame.
  std::uint64_t frame_remaining_ = 0;  // payload bytes not yet received
  std::size_t frame_consumed_ = 0;     // payload bytes already received (also the masking key phase)
  std::size_t control_start_ = 0;      // where a spanning control payload starts in buffer_
  std::array<std::uint8_t, 4> mask_{};
  std::array<std::uint8_t, max_header_bytes> header_buf_{};  // a header split across feeds
  std::uint8_t header_len_ = 0;
  opcode frame_op_ = opcode::continuation;
  bool frame_fin_ = false;
  bool in_payload_ = false;  // header done, payload (possibly empty) pending
  bool compression_;         // RSV1 allowed (here, in padding: an idle connection's size stays the same)

  // Current data message (possibly spanning several fragments).
  std::size_t message_bytes_ = 0;  // declared payload of its fragments so far, checked against the maximum
  opcode message_op_ = opcode::text;
  bool in_message_ = false;
  bool message_compressed_ = false;  // RSV1 on its first frame
  utf8_validator utf8_;

  bool done_ = false;  // after an error or a close frame
  result error_;       // the sticky error
};

}  // namespace bc::ws
