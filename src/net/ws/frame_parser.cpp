#include "net/ws/frame_parser.hpp"

#include <algorithm>

namespace bc::ws {
namespace {

using result = frame_parser::result;

constexpr std::size_t max_control_payload = 125;
// A buffer this small is kept between messages to avoid churn; a bigger one is freed once its message is
// done.
constexpr std::size_t keep_capacity = 4 * 1024;

constexpr result fail(close_code code, std::string_view reason) {
  return {false, code, reason};
}

// Header length implied by the second byte; every client frame carries a 4-byte masking key.
std::size_t header_size(std::uint8_t b1) {
  const std::uint8_t len7 = b1 & 0x7F;
  return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
}

bool is_known_opcode(std::uint8_t op) {
  return op <= 2 || (op >= 8 && op <= 10);
}

std::string_view as_view(const std::uint8_t* p, std::size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

// std::string keeps short contents inline (SSO); only capacity beyond that lives on the heap.
const std::size_t inline_capacity = std::string().capacity();

}  // namespace

frame_parser::frame_parser(std::size_t max_message_bytes, bool compression)
    : max_message_bytes_(max_message_bytes), compression_(compression) {}

result frame_parser::feed(std::span<std::uint8_t> data, frame_handler& handler) {
  if (done_) return error_;
  std::size_t pos = 0;
  result r;
  while (r.ok && !done_) {
    if (!in_payload_) {
      if (pos == data.size()) break;
      r = read_header(data, pos);
    } else {
      // An empty payload still goes through read_payload, which delivers the frame.
      if (frame_remaining_ > 0 && pos == data.size()) break;
      r = read_payload(data, pos, handler);
    }
  }
  if (!r.ok) {
    error_ = r;
    done_ = true;
  }
  if (done_) reset();  // nothing more will be parsed: drop partial state and memory now
  return r;
}

result frame_parser::read_header(std::span<std::uint8_t> data, std::size_t& pos) {
  const std::size_t avail = data.size() - pos;
  if (header_len_ == 0 && avail >= 2 && avail >= header_size(data[pos + 1])) {
    // Fast path: the whole header is in the buffer; decode it in place.
    const std::uint8_t* h = data.data() + pos;
    if (auto r = check_first_bytes(h[0], h[1]); !r.ok) return r;
    pos += header_size(h[1]);
    return begin_frame(h);
  }
  // Slow path: gather the header across feeds, checking the first two bytes as soon as they are here.
  while (pos < data.size()) {
    const std::size_t need = header_len_ < 2 ? 2 : header_size(header_buf_[1]);
    const std::size_t take = std::min(need - header_len_, data.size() - pos);
    std::copy_n(data.data() + pos, take, header_buf_.data() + header_len_);
    header_len_ = static_cast<std::uint8_t>(header_len_ + take);
    pos += take;
    if (header_len_ < need) break;
    if (need == 2) {
      if (auto r = check_first_bytes(header_buf_[0], header_buf_[1]); !r.ok) return r;
      continue;
    }
    header_len_ = 0;
    return begin_frame(header_buf_.data());
  }
  return {};
}

// Every rule that the first two header bytes decide, so a bad frame fails before its length or payload.
result frame_parser::check_first_bytes(std::uint8_t b0, std::uint8_t b1) const {
  const std::uint8_t op = b0 & 0x0F;
  const std::uint8_t len7 = b1 & 0x7F;
  const bool fin = (b0 & 0x80) != 0;
  // RSV1 is permessage-deflate's "compressed" bit (RFC 7692 6): only with the extension negotiated, and
  // only on the first frame of a data message.
  const bool rsv1 = (b0 & 0x40) != 0;
  if ((b0 & 0x30) != 0 || (rsv1 && !compression_))
    return fail(close_code::protocol_error, "reserved bits set");
  if (!is_known_opcode(op)) return fail(close_code::protocol_error, "unknown opcode");
  if (rsv1 && is_control(static_cast<opcode>(op)))
    return fail(close_code::protocol_error, "compressed control frame");
  if (rsv1 && static_cast<opcode>(op) == opcode::continuation)
    return fail(close_code::protocol_error, "compressed bit on a continuation frame");
  if ((b1 & 0x80) == 0) return fail(close_code::protocol_error, "client frame not masked");
  if (is_control(static_cast<opcode>(op))) {
    if (!fin) return fail(close_code::protocol_error, "fragmented control frame");
    if (len7 > max_control_payload) return fail(close_code::protocol_error, "control frame too long");
    if (static_cast<opcode>(op) == opcode::close && len7 == 1) {
      return fail(close_code::protocol_error, "close frame with a 1-byte body");
    }
  } else if (static_cast<opcode>(op) == opcode::continuation) {
    if (!in_message_) return fail(close_code::protocol_error, "continuation frame without a message");
  } else if (in_message_) {
    return fail(close_code::protocol_error, "new message inside a fragmented message");
  }
  return {};
}

result frame_parser::begin_frame(const std::uint8_t* h) {
  const std::uint8_t len7 = h[1] & 0x7F;
  std::uint64_t len = len7;
  std::size_t at = 2;
  if (len7 == 126) {
    len = (std::uint64_t{h[2]} << 8) | h[3];
    at = 4;
  } else if (len7 == 127) {
    len = 0;
    for (std::size_t i = 0; i < 8; ++i) len = (len << 8) | h[2 + i];
    at = 10;
    if ((len >> 63) != 0) return fail(close_code::protocol_error, "frame length has the high bit set");
  }
  std::copy_n(h + at, 4, mask_.begin());
  frame_op_ = static_cast<opcode>(h[0] & 0x0F);
  frame_fin_ = (h[0] & 0x80) != 0;
  if (is_control(frame_op_)) {
    control_start_ = buffer_.size();
  } else {
    // Checked against the declared length, before a byte of this payload is buffered.
    if (len > max_message_bytes_ - message_bytes_)
      return fail(close_code::message_too_big, "message too big");
    if (frame_op_ != opcode::continuation) {
      message_op_ = frame_op_;
      message_compressed_ = (h[0] & 0x40) != 0;
      in_message_ = true;
      utf8_.reset();
    }
    message_bytes_ += static_cast<std::size_t>(len);
  }
  frame_remaining_ = len;
  frame_consumed_ = 0;
  in_payload_ = true;
  return {};
}

result frame_parser::read_payload(std::span<std::uint8_t> data, std::size_t& pos, frame_handler& handler) {
  const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(frame_remaining_, data.size() - pos));
  std::uint8_t* p = data.data() + pos;
  apply_mask(p, take, mask_, frame_consumed_);  // frame_consumed_ keeps the key phase across feeds
  pos += take;
  const bool whole_frame = frame_consumed_ == 0 && take == frame_remaining_;
  frame_consumed_ += take;
  frame_remaining_ -= take;
  if (frame_remaining_ == 0) in_payload_ = false;
  const std::string_view chunk = as_view(p, take);
  return is_control(frame_op_) ? on_control_chunk(chunk, whole_frame, handler)
                               : on_data_chunk(chunk, whole_frame, handler);
}

result frame_parser::on_data_chunk(std::string_view chunk, bool whole_frame, frame_handler& handler) {
  // Validate every piece as it arrives so a bad text message fails fast (RFC 6455 8.1). A compressed one
  // can only be checked once inflated, by the handler.
  if (message_op_ == opcode::text && !message_compressed_ && !utf8_.feed(chunk)) {
    return fail(close_code::invalid_payload, "text message is not valid UTF-8");
  }
  const bool last = frame_remaining_ == 0 && frame_fin_;
  // Zero-copy: the whole message is this one frame, wholly inside the fed buffer.
  if (last && whole_frame && buffer_.empty()) return deliver_message(chunk, handler);
  buffer_.append(chunk);
  if (!last) return {};
  return deliver_message(buffer_, handler);
}

result frame_parser::on_control_chunk(std::string_view chunk, bool whole_frame, frame_handler& handler) {
  if (whole_frame) return deliver_control(chunk, handler);  // zero-copy
  // A control frame spanning feeds is parked after the partial data message (if any) sharing buffer_.
  buffer_.append(chunk);
  if (frame_remaining_ > 0) return {};
  const result r = deliver_control(std::string_view(buffer_).substr(control_start_), handler);
  buffer_.resize(control_start_);
  if (buffer_.empty()) trim_buffer();
  return r;
}

result frame_parser::deliver_control(std::string_view payload, frame_handler& handler) {
  switch (frame_op_) {
    case opcode::ping:
      handler.on_ping(payload);
      return {};
    case opcode::pong:
      handler.on_pong(payload);
      return {};
    default:
      break;
  }
  auto code = static_cast<std::uint16_t>(close_code::no_status);
  std::string_view reason;
  if (!payload.empty()) {  // a 1-byte body was already rejected with the header
    code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                      static_cast<std::uint8_t>(payload[1]));
    if (!is_valid_close_code_on_wire(code)) return fail(close_code::protocol_error, "invalid close code");
    reason = payload.substr(2);
    if (!is_valid_utf8(reason)) return fail(close_code::invalid_payload, "close reason is not valid UTF-8");
  }
  done_ = true;  // before the callback: the handler may react by feeding nothing more
  handler.on_close(code, reason);
  return {};
}

result frame_parser::deliver_message(std::string_view payload, frame_handler& handler) {
  if (message_op_ == opcode::text && !message_compressed_ && !utf8_.complete()) {
    return fail(close_code::invalid_payload, "text message ends inside a UTF-8 sequence");
  }
  in_message_ = false;
  message_bytes_ = 0;
  if (message_compressed_) {
    handler.on_compressed_message(message_op_, payload);
  } else {
    handler.on_message(message_op_, payload);
  }
  trim_buffer();  // after the callback: payload may point into buffer_
  return {};
}

void frame_parser::trim_buffer() {
  buffer_.clear();
  if (buffer_.capacity() > keep_capacity) std::string().swap(buffer_);
}

void frame_parser::reset() {
  std::string().swap(buffer_);
  header_len_ = 0;
  in_payload_ = false;
  in_message_ = false;
  message_compressed_ = false;
  frame_remaining_ = 0;
  frame_consumed_ = 0;
  message_bytes_ = 0;
  utf8_.reset();
}

std::size_t frame_parser::buffered_bytes() const {
  return buffer_.capacity() > inline_capacity ? buffer_.capacity() + 1 : 0;  // +1: the terminating NUL
}

void frame_parser::release_memory() {
  if (buffer_.empty()) std::string().swap(buffer_);
}

}  // namespace bc::ws
