#include "net/ws/frame_parser.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "net/ws/frame_writer.hpp"

namespace bc::ws {
namespace {

using bytes = std::vector<std::uint8_t>;

enum class kind { message, compressed, ping, pong, close };

struct event {
  kind what;
  opcode op = opcode::text;
  std::string payload;
  std::uint16_t code = 0;
  const char* data = nullptr;  // where the payload view pointed (not compared)

  bool operator==(const event& o) const {
    return what == o.what && op == o.op && payload == o.payload && code == o.code;
  }
};

std::ostream& operator<<(std::ostream& os, const event& e) {
  return os << "{" << static_cast<int>(e.what) << " op=" << static_cast<int>(e.op) << " code=" << e.code
            << " len=" << e.payload.size() << "}";
}

struct recorder : frame_handler {
  std::vector<event> events;
  void on_message(opcode op, std::string_view p) override {
    events.push_back({kind::message, op, std::string(p), 0, p.data()});
  }
  void on_compressed_message(opcode op, std::string_view p) override {
    events.push_back({kind::compressed, op, std::string(p), 0, p.data()});
  }
  void on_ping(std::string_view p) override {
    events.push_back({kind::ping, opcode::ping, std::string(p), 0, p.data()});
  }
  void on_pong(std::string_view p) override {
    events.push_back({kind::pong, opcode::pong, std::string(p), 0, p.data()});
  }
  void on_close(std::uint16_t code, std::string_view r) override {
    events.push_back({kind::close, opcode::close, std::string(r), code, r.data()});
  }
};

event msg(opcode op, std::string p) {
  return {kind::message, op, std::move(p)};
}
event compressed(opcode op, std::string p) {
  return {kind::compressed, op, std::move(p)};
}
event ping(std::string p) {
  return {kind::ping, opcode::ping, std::move(p)};
}
event pong(std::string p) {
  return {kind::pong, opcode::pong, std::move(p)};
}
event closed(std::uint16_t code, std::string reason) {
  return {kind::close, opcode::close, std::move(reason), code};
}

// A masked client frame, as a browser would send it; `rsv1`: permessage-deflate's compressed bit.
bytes frame(opcode op, std::string_view payload, bool fin = true,
            std::array<std::uint8_t, 4> key = {0x37, 0xfa, 0x21, 0x3d}, bool rsv1 = false) {
  std::uint8_t h[max_header_bytes];
  const std::size_t n = write_masked_header(h, op, payload.size(), key, fin, rsv1);
  bytes out(h, h + n);
  out.insert(out.end(), payload.begin(), payload.end());
  apply_mask(out.data() + n, payload.size(), key);
  return out;
}

bytes concat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::string pattern(std::size_t n) {
  std::string s(n, ' ');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

std::string close_body(std::uint16_t code, std::string_view reason = {}) {
  std::string s{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  return s.append(reason);
}

// Feeds `wire` (copied, since the parser unmasks in place) in chunks cut at `cuts`.
frame_parser::result feed_split(frame_parser& p, bytes wire, recorder& rec,
                                const std::vector<std::size_t>& cuts) {
  std::size_t at = 0;
  frame_parser::result r;
  for (std::size_t cut : cuts) {
    r = p.feed(std::span(wire).subspan(at, cut - at), rec);
    if (!r.ok) return r;
    at = cut;
  }
  return p.feed(std::span(wire).subspan(at), rec);
}

frame_parser::result feed_all(frame_parser& p, bytes wire, recorder& rec) {
  return feed_split(p, std::move(wire), rec, {});
}

frame_parser::result feed_bytewise(frame_parser& p, const bytes& wire, recorder& rec) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < wire.size(); ++i) cuts.push_back(i);
  return feed_split(p, wire, rec, cuts);
}

void expect_error(const bytes& wire, close_code code, std::size_t max = 64 * 1024) {
  // The same error whether the bytes arrive at once or one at a time.
  for (bool bytewise : {false, true}) {
    frame_parser p(max);
    recorder rec;
    const auto r = bytewise ? feed_bytewise(p, wire, rec) : feed_all(p, wire, rec);
    EXPECT_FALSE(r.ok) << "bytewise=" << bytewise;
    EXPECT_EQ(r.error, code) << "bytewise=" << bytewise << " reason=" << r.reason;
    EXPECT_FALSE(r.reason.empty());
    EXPECT_EQ(p.buffered_bytes(), 0u);
  }
}

bool points_into(const event& e, const bytes& buf) {
  const auto* begin = reinterpret_cast<const char*>(buf.data());
  return e.data >= begin && e.data + e.payload.size() <= begin + buf.size();
}

// ---- well-formed input ----

TEST(frame_parser, rfc_masked_hello) {
  frame_parser p;
  recorder rec;
  bytes wire{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  EXPECT_TRUE(p.feed(wire, rec).ok);
  EXPECT_EQ(rec.events, std::vector<event>{msg(opcode::text, "Hello")});
  EXPECT_TRUE(p.idle());
}

class length_classes : public ::testing::TestWithParam<std::size_t> {};

TEST_P(length_classes, whole_frame_is_delivered_zero_copy) {
  const std::size_t len = GetParam();
  frame_parser p(1 << 20);
  recorder rec;
  bytes wire = frame(opcode::binary, pattern(len));
  ASSERT_TRUE(p.feed(wire, rec).ok);
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(rec.events[0], msg(opcode::binary, pattern(len)));
  if (len > 0) {
    EXPECT_TRUE(points_into(rec.events[0], wire));
  }
  EXPECT_TRUE(p.idle());
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST_P(length_classes, split_frame_is_reassembled) {
  const std::size_t len = GetParam();
  const bytes wire = frame(opcode::text, pattern(len));
  for (std::size_t cut : {std::size_t{1}, std::size_t{2}, wire.size() / 2, wire.size() - 1}) {
    if (cut == 0 || cut >= wire.size()) continue;
    frame_parser p(1 << 20);
    recorder rec;
    ASSERT_TRUE(feed_split(p, wire, rec, {cut}).ok);
    EXPECT_EQ(rec.events, std::vector<event>{msg(opcode::text, pattern(len))}) << cut;
    EXPECT_TRUE(p.idle());
    if (len > 4096) {
      EXPECT_EQ(p.buffered_bytes(), 0u);  // big buffers are freed at once
    }
    p.release_memory();
    EXPECT_EQ(p.buffered_bytes(), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(frame_parser, length_classes,
                         ::testing::Values(0, 1, 125, 126, 127, 4096, 4097, 65535, 65536, 70000));

TEST(frame_parser, non_minimal_length_encoding_is_accepted) {
  // "Hi" with a 16-bit and with a 64-bit length field.
  bytes wire16{0x81, 0xFE, 0x00, 0x02, 0, 0, 0, 0, 'H', 'i'};
  bytes wire64{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 'H', 'i'};
  for (const bytes& w : {wire16, wire64}) {
    frame_parser p;
    recorder rec;
    EXPECT_TRUE(feed_all(p, w, rec).ok);
    EXPECT_EQ(rec.events, std::vector<event>{msg(opcode::text, "Hi")});
  }
}

TEST(frame_parser, control_frames) {
  frame_parser p;
  recorder rec;
  const bytes wire =
      concat({frame(opcode::ping, "are you there"), frame(opcode::pong, ""),
              frame(opcode::ping, pattern(125)), frame(opcode::close, close_body(1000, "bye"))});
  ASSERT_TRUE(feed_all(p, wire, rec).ok);
  EXPECT_EQ(rec.events,
            (std::vector<event>{ping("are you there"), pong(""), ping(pattern(125)), closed(1000, "bye")}));
}

TEST(frame_parser, empty_close_reports_no_status) {
  frame_parser p;
  recorder rec;
  ASSERT_TRUE(feed_all(p, frame(opcode::close, ""), rec).ok);
  EXPECT_EQ(rec.events, std::vector<event>{closed(1005, "")});
}

TEST(frame_parser, valid_close_codes_are_reported) {
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4001, 4999}) {
    frame_parser p;
    recorder rec;
    ASSERT_TRUE(feed_all(p, frame(opcode::close, close_body(code, "r\xC3\xA9")), rec).ok) << code;
    EXPECT_EQ(rec.events, std::vector<event>{closed(code, "r\xC3\xA9")});
  }
}

TEST(frame_parser, fragmented_text_with_control_frames_between) {
  frame_parser p;
  recorder rec;
  bytes wire = concat({frame(opcode::text, "Hel", false), frame(opcode::ping, "p1"),
                       frame(opcode::continuation, "lo", false), frame(opcode::pong, "p2"),
                       frame(opcode::continuation, "", false), frame(opcode::continuation, " world", true)});
  ASSERT_TRUE(p.feed(wire, rec).ok);
  EXPECT_EQ(rec.events, (std::vector<event>{ping("p1"), pong("p2"), msg(opcode::text, "Hello world")}));
  EXPECT_TRUE(points_into(rec.events[0], wire));   // whole control frames are zero-copy too
  EXPECT_FALSE(points_into(rec.events[2], wire));  // reassembled in the parser's buffer
  EXPECT_TRUE(p.idle());
  EXPECT_LE(p.buffered_bytes(), 4097u);  // a small buffer may be kept for reuse...
  p.release_memory();
  EXPECT_EQ(p.buffered_bytes(), 0u);  // ...until the session releases it
}

TEST(frame_parser, idle_tracks_partial_state) {
  frame_parser p;
  recorder rec;
  EXPECT_TRUE(p.idle());
  bytes first = frame(opcode::binary, "ab", false);
  ASSERT_TRUE(p.feed(first, rec).ok);
  EXPECT_FALSE(p.idle());  // message in progress
  bytes partial = frame(opcode::continuation, "cd");
  ASSERT_TRUE(p.feed(std::span(partial).first(3), rec).ok);
  EXPECT_FALSE(p.idle());
  ASSERT_TRUE(p.feed(std::span(partial).subspan(3), rec).ok);
  EXPECT_TRUE(p.idle());
  EXPECT_EQ(rec.events, std::vector<event>{msg(opcode::binary, "abcd")});
}

TEST(frame_parser, partial_header_is_held_inline) {
  frame_parser p(1 << 20);
  recorder rec;
  bytes wire = frame(opcode::binary, pattern(70000));  // 14-byte header
  for (std::size_t i = 0; i < 13; ++i) {
    ASSERT_TRUE(p.feed(std::span(wire).subspan(i, 1), rec).ok);
    EXPECT_FALSE(p.idle());
    EXPECT_EQ(p.buffered_bytes(), 0u) << i;  // no heap for a header
  }
  ASSERT_TRUE(p.feed(std::span(wire).subspan(13), rec).ok);
  EXPECT_EQ(rec.events, std::vector<event>{msg(opcode::binary, pattern(70000))});
  EXPECT_TRUE(points_into(rec.events[0], wire));  // the header came separately, the payload did not
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(frame_parser, buffer_grows_with_received_bytes_not_declared_length) {
  frame_parser p(1 << 20);
  recorder rec;
  bytes wire = frame(opcode::binary, pattern(1 << 20));
  ASSERT_TRUE(p.feed(std::span(wire).first(14 + 100), rec).ok);
  EXPECT_GT(p.buffered_bytes(), 0u);
  EXPECT_LT(p.buffered_bytes(), 4096u);  // declared 1 MiB, received 100 bytes
  ASSERT_TRUE(p.feed(std::span(wire).subspan(14 + 100), rec).ok);
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(rec.events[0].payload.size(), 1u << 20);
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(frame_parser, multibyte_utf8_split_across_fragments_and_feeds) {
  // Euro sign split between fragments; emoji split between fragments and then between feeds.
  const bytes wire =
      concat({frame(opcode::text, "price \xE2", false), frame(opcode::continuation, "\x82\xAC", false),
              frame(opcode::continuation, " \xF0\x9F", false), frame(opcode::continuation, "\x98\x80"),
              frame(opcode::text, "\xF4\x8F\xBF\xBF")});
  const std::vector<event> expected{msg(opcode::text, "price \xE2\x82\xAC \xF0\x9F\x98\x80"),
                                    msg(opcode::text, "\xF4\x8F\xBF\xBF")};
  frame_parser whole;
  recorder rec_whole;
  ASSERT_TRUE(feed_all(whole, wire, rec_whole).ok);
  EXPECT_EQ(rec_whole.events, expected);
  frame_parser bytewise;
  recorder rec_bytewise;
  ASSERT_TRUE(feed_bytewise(bytewise, wire, rec_bytewise).ok);
  EXPECT_EQ(rec_bytewise.events, expected);
}

TEST(frame_parser, binary_is_not_utf8_checked) {
  frame_parser p;
  recorder rec;
  ASSERT_TRUE(feed_all(p, frame(opcode::binary, "\xFF\xC0\xAF"), rec).ok);
  EXPECT_EQ(rec.events, std::vector<event>{msg(opcode::binary, "\xFF\xC0\xAF")});
}

TEST(frame_parser, control_frame_split_across_feeds_inside_fragmented_message) {
  // The ping is parked after the partial message in the same buffer; the message must survive it.
  const bytes wire = concat({frame(opcode::binary, pattern(300), false), frame(opcode::ping, pattern(100)),
                             frame(opcode::continuation, "END")});
  const std::size_t ping_start = 8 + 300;
  frame_parser p;
  recorder rec;
  ASSERT_TRUE(feed_split(p, wire, rec, {ping_start + 3, ping_start + 50}).ok);
  EXPECT_EQ(rec.events, (std::vector<event>{ping(pattern(100)), msg(opcode::binary, pattern(300) + "END")}));
  EXPECT_TRUE(p.idle());
}

// A stream with every frame kind, length class and fragmentation, ending with a close.
bytes mixed_stream() {
  return concat({frame(opcode::text, "hello"), frame(opcode::binary, pattern(300), true, {1, 2, 3, 4}),
                 frame(opcode::text, "frag", false, {9, 9, 9, 9}), frame(opcode::ping, "x"),
                 frame(opcode::continuation, "men", false, {0xFF, 0, 0xFF, 0}),
                 frame(opcode::continuation, "ted \xC3\xA9t\xC3\xA9", true, {5, 6, 7, 8}),
                 frame(opcode::pong, ""),
                 frame(opcode::binary, pattern(70000), true, {0xA0, 0xB0, 0xC0, 0xD0}),
                 frame(opcode::text, ""), frame(opcode::binary, pattern(65535)),
                 frame(opcode::ping, pattern(125)), frame(opcode::close, close_body(1001, "going"))});
}

std::vector<event> mixed_expected() {
  return {msg(opcode::text, "hello"),
          msg(opcode::binary, pattern(300)),
          ping("x"),
          msg(opcode::text, "fragmented \xC3\xA9t\xC3\xA9"),
          pong(""),
          msg(opcode::binary, pattern(70000)),
          msg(opcode::text, ""),
          msg(opcode::binary, pattern(65535)),
          ping(pattern(125)),
          closed(1001, "going")};
}

TEST(frame_parser, mixed_stream_in_one_feed) {
  frame_parser p(1 << 20);
  recorder rec;
  ASSERT_TRUE(feed_all(p, mixed_stream(), rec).ok);
  EXPECT_EQ(rec.events, mixed_expected());
}

TEST(frame_parser, byte_by_byte_feeding_gives_same_events) {
  frame_parser p(1 << 20);
  recorder rec;
  ASSERT_TRUE(feed_bytewise(p, mixed_stream(), rec).ok);
  EXPECT_EQ(rec.events, mixed_expected());
}

TEST(frame_parser, random_split_points_give_same_events) {
  const bytes wire = mixed_stream();
  std::mt19937 rng(20240601);  // fixed seed: failures reproduce
  for (int iter = 0; iter < 300; ++iter) {
    std::uniform_int_distribution<std::size_t> count(0, 40);
    std::uniform_int_distribution<std::size_t> where(1, wire.size() - 1);
    std::vector<std::size_t> cuts(count(rng));
    for (auto& c : cuts) c = where(rng);
    // Also cut densely near the start, where the small frames are.
    for (int k = 0; k < 5; ++k) cuts.push_back(std::uniform_int_distribution<std::size_t>(1, 400)(rng));
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    frame_parser p(1 << 20);
    recorder rec;
    ASSERT_TRUE(feed_split(p, wire, rec, cuts).ok) << iter;
    ASSERT_EQ(rec.events, mixed_expected()) << iter;
  }
}

TEST(frame_parser, mask_phase_survives_every_split_inside_payload) {
  const std::string payload = pattern(40);
  const bytes wire = frame(opcode::binary, payload, true, {0x11, 0x22, 0x33, 0x44});
  for (std::size_t a = 7; a < wire.size(); ++a) {
    for (std::size_t b = a + 1; b < wire.size(); ++b) {
      frame_parser p;
      recorder rec;
      ASSERT_TRUE(feed_split(p, wire, rec, {a, b}).ok);
      ASSERT_EQ(rec.events, std::vector<event>{msg(opcode::binary, payload)}) << a << " " << b;
    }
  }
}

TEST(frame_parser, empty_feed_is_harmless) {
  frame_parser p;
  recorder rec;
  EXPECT_TRUE(p.feed({}, rec).ok);
  EXPECT_TRUE(p.idle());
  EXPECT_TRUE(rec.events.empty());
}

// ---- zero-copy and memory ----

TEST(frame_parser, zero_copy_views_point_into_input) {
  bytes wire = concat(
      {frame(opcode::text, "first"), frame(opcode::ping, "ping!"), frame(opcode::binary, pattern(1000))});
  frame_parser p;
  recorder rec;
  ASSERT_TRUE(p.feed(wire, rec).ok);
  ASSERT_EQ(rec.events.size(), 3u);
  for (const event& e : rec.events) EXPECT_TRUE(points_into(e, wire)) << e;
  // Unmasked in place: the input now holds the plain payload right after the first header.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(wire.data()) + 6, 5), "first");
  EXPECT_EQ(p.buffered_bytes(), 0u);
  EXPECT_TRUE(p.idle());
}

TEST(frame_parser, final_fragment_after_empty_fragments_is_zero_copy) {
  bytes wire = concat({frame(opcode::text, "", false), frame(opcode::continuation, "all here")});
  frame_parser p;
  recorder rec;
  ASSERT_TRUE(p.feed(wire, rec).ok);
  ASSERT_EQ(rec.events, std::vector<event>{msg(opcode::text, "all here")});
  EXPECT_TRUE(points_into(rec.events[0], wire));
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(frame_parser, large_reassembled_message_frees_its_buffer) {
  frame_parser p(1 << 20);
  recorder rec;
  const bytes wire =
      concat({frame(opcode::binary, pattern(5000), false), frame(opcode::continuation, pattern(5000))});
  ASSERT_TRUE(feed_split(p, wire, rec, {5008}).ok);
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(rec.events[0].payload.size(), 10000u);
  EXPECT_TRUE(p.idle());
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(frame_parser, release_memory_keeps_partial_message) {
  frame_parser p;
  recorder rec;
  bytes first = frame(opcode::text, pattern(100), false);
  ASSERT_TRUE(p.feed(first, rec).ok);
  const std::size_t held = p.buffered_bytes();
  EXPECT_GT(held, 0u);
  p.release_memory();  // not idle: must not drop the partial message
  EXPECT_EQ(p.buffered_bytes(), held);
  bytes last = frame(opcode::continuation, "!");
  ASSERT_TRUE(p.feed(last, rec).ok);
  EXPECT_EQ(rec.events, std::vector<event>{msg(opcode::text, pattern(100) + "!")});
  p.release_memory();
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

// ---- error rules ----

TEST(frame_parser, unmasked_frame_is_protocol_error) {
  std::uint8_t h[max_header_bytes];
  const std::size_t n = write_header(h, opcode::text, 2);
  bytes wire(h, h + n);
  wire.insert(wire.end(), {'h', 'i'});
  expect_error(wire, close_code::protocol_error);
}

TEST(frame_parser, error_is_detected_from_the_first_two_bytes) {
  frame_parser p;
  recorder rec;
  bytes two{0x81, 0x05};  // unmasked; the rest never arrives
  const auto r = p.feed(two, rec);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, close_code::protocol_error);
}

TEST(frame_parser, reserved_bits_are_protocol_error) {
  for (std::uint8_t rsv : {0x40, 0x20, 0x10}) {
    bytes wire = frame(opcode::text, "hi");
    wire[0] |= rsv;
    expect_error(wire, close_code::protocol_error);
  }
}

TEST(frame_parser, unknown_opcodes_are_protocol_error) {
  for (std::uint8_t op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
    bytes wire = frame(opcode::binary, "x");
    wire[0] = static_cast<std::uint8_t>(0x80 | op);
    expect_error(wire, close_code::protocol_error);
  }
}

TEST(frame_parser, fragmented_control_frame_is_protocol_error) {
  for (opcode op : {opcode::ping, opcode::pong, opcode::close}) {
    expect_error(frame(op, "", false), close_code::protocol_error);
  }
}

TEST(frame_parser, control_frame_over_125_bytes_is_protocol_error) {
  for (opcode op : {opcode::ping, opcode::pong, opcode::close}) {
    expect_error(frame(op, close_body(1000, pattern(124))), close_code::protocol_error);  // 126 bytes
  }
}

TEST(frame_parser, continuation_without_message_is_protocol_error) {
  expect_error(frame(opcode::continuation, "x"), close_code::protocol_error);
  expect_error(concat({frame(opcode::text, "done"), frame(opcode::continuation, "x")}),
               close_code::protocol_error);
}

TEST(frame_parser, new_message_inside_fragmented_message_is_protocol_error) {
  expect_error(concat({frame(opcode::text, "a", false), frame(opcode::text, "b")}),
               close_code::protocol_error);
  expect_error(
      concat({frame(opcode::binary, "a", false), frame(opcode::ping, "ok"), frame(opcode::binary, "b")}),
      close_code::protocol_error);
}

TEST(frame_parser, length_with_high_bit_is_protocol_error) {
  bytes wire{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
  expect_error(wire, close_code::protocol_error, SIZE_MAX);
}

TEST(frame_parser, message_too_big_is_detected_from_the_header) {
  const std::size_t max = 1000;
  // Only the header is fed: the error must not wait for the payload.
  bytes wire = frame(opcode::binary, pattern(max + 1));
  wire.resize(8);
  expect_error(wire, close_code::message_too_big, max);
  // Huge 64-bit length without the high bit.
  expect_error(bytes{0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4},
               close_code::message_too_big, max);
}

TEST(frame_parser, message_exactly_at_limit_is_accepted) {
  frame_parser p(1000);
  recorder rec;
  ASSERT_TRUE(
      feed_all(
          p, concat({frame(opcode::binary, pattern(600), false), frame(opcode::continuation, pattern(400))}),
          rec)
          .ok);
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(rec.events[0].payload.size(), 1000u);
}

TEST(frame_parser, fragments_summing_over_limit_are_too_big) {
  const bytes wire = concat({frame(opcode::binary, pattern(600), false), frame(opcode::ping, "p"),
                             frame(opcode::continuation, pattern(401))});
  expect_error(wire, close_code::message_too_big, 1000);
  // Detected on the second fragment's 8-byte header, before its payload.
  frame_parser p(1000);
  recorder rec;
  const auto r = feed_all(p, bytes(wire.begin(), wire.begin() + 608 + 7 + 8), rec);
  EXPECT_EQ(r.error, close_code::message_too_big);
}

TEST(frame_parser, control_frames_do_not_count_against_message_limit) {
  frame_parser p(10);
  recorder rec;
  EXPECT_TRUE(feed_all(p, frame(opcode::ping, pattern(125)), rec).ok);
}

TEST(frame_parser, invalid_utf8_text_is_invalid_payload) {
  for (std::string_view bad : {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "abc\xE2\x82", "\xFF"}) {
    expect_error(frame(opcode::text, bad), close_code::invalid_payload);
    expect_error(concat({frame(opcode::text, "ok", false), frame(opcode::continuation, bad)}),
                 close_code::invalid_payload);
  }
}

TEST(frame_parser, message_ending_inside_utf8_sequence_is_invalid_payload) {
  expect_error(concat({frame(opcode::text, "a\xF0\x9F", false), frame(opcode::continuation, "\x98")}),
               close_code::invalid_payload);
}

TEST(frame_parser, invalid_utf8_fails_fast_before_message_ends) {
  frame_parser p;
  recorder rec;
  const auto r = feed_all(p, frame(opcode::text, "bad \xFF", false), rec);  // final fragment never sent
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, close_code::invalid_payload);
  // Also inside a frame whose payload has not fully arrived.
  frame_parser q;
  bytes wire = frame(opcode::text, "\xC0" + pattern(100));
  const auto r2 = q.feed(std::span(wire).first(10), rec);
  EXPECT_EQ(r2.error, close_code::invalid_payload);
}

TEST(frame_parser, close_with_one_byte_body_is_protocol_error) {
  expect_error(frame(opcode::close, "\x03"), close_code::protocol_error);
}

TEST(frame_parser, close_with_invalid_code_is_protocol_error) {
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2999, 5000, 65535}) {
    expect_error(frame(opcode::close, close_body(code)), close_code::protocol_error);
  }
}

TEST(frame_parser, close_with_invalid_reason_is_invalid_payload) {
  expect_error(frame(opcode::close, close_body(1000, "\xC0\xAF")), close_code::invalid_payload);
  expect_error(frame(opcode::close, close_body(1000, "cut \xE2\x82")), close_code::invalid_payload);
}

TEST(frame_parser, input_after_error_is_ignored_and_error_repeats) {
  frame_parser p;
  recorder rec;
  bytes bad = frame(opcode::continuation, "x");
  const auto r1 = p.feed(bad, rec);
  ASSERT_FALSE(r1.ok);
  bytes good = frame(opcode::text, "ignored");
  const auto r2 = p.feed(good, rec);
  EXPECT_FALSE(r2.ok);
  EXPECT_EQ(r2.error, r1.error);
  EXPECT_TRUE(rec.events.empty());
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(frame_parser, events_before_an_error_are_delivered) {
  frame_parser p;
  recorder rec;
  const auto r = feed_all(p,
                          concat({frame(opcode::text, "one"), frame(opcode::ping, "two"),
                                  frame(opcode::continuation, "x"), frame(opcode::text, "never")}),
                          rec);
  EXPECT_EQ(r.error, close_code::protocol_error);
  EXPECT_EQ(rec.events, (std::vector<event>{msg(opcode::text, "one"), ping("two")}));
}

TEST(frame_parser, input_after_close_is_ignored) {
  frame_parser p;
  recorder rec;
  const bytes wire = concat({frame(opcode::binary, "partial", false), frame(opcode::close, close_body(1000)),
                             frame(opcode::text, "after close"), frame(opcode::continuation, "!")});
  EXPECT_TRUE(feed_all(p, wire, rec).ok);
  EXPECT_TRUE(feed_all(p, frame(opcode::text, "later"), rec).ok);
  EXPECT_EQ(rec.events, std::vector<event>{closed(1000, "")});
  EXPECT_EQ(p.buffered_bytes(), 0u);  // the partial message was dropped
}

TEST(frame_parser, garbage_after_close_in_same_feed_is_not_an_error) {
  frame_parser p;
  recorder rec;
  bytes wire = concat({frame(opcode::close, ""), bytes{0x00, 0x01, 0xFF}});
  EXPECT_TRUE(feed_all(p, wire, rec).ok);
  EXPECT_EQ(rec.events, std::vector<event>{closed(1005, "")});
}

}  // namespace
}  // namespace bc::ws

namespace bc::ws {
namespace {

constexpr std::array<std::uint8_t, 4> key0 = {0x37, 0xfa, 0x21, 0x3d};

bytes compressed_frame(opcode op, std::string_view payload, bool fin = true) {
  return frame(op, payload, fin, key0, true);
}

TEST(frame_parser_rsv1, without_compression_rsv1_is_a_protocol_error) {
  frame_parser p(1000);
  recorder rec;
  const auto r = feed_all(p, compressed_frame(opcode::text, "abc"), rec);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, close_code::protocol_error);
  EXPECT_TRUE(rec.events.empty());
}

TEST(frame_parser_rsv1, compressed_message_is_handed_over_undecoded) {
  frame_parser p(1000, true);
  recorder rec;
  // Not UTF-8 and not DEFLATE: the parser must not judge either, the handler inflates and checks.
  const std::string raw("\xff\xfe\x00\x80", 4);
  ASSERT_TRUE(feed_all(p, compressed_frame(opcode::text, raw), rec).ok);
  ASSERT_TRUE(feed_all(p, frame(opcode::text, "plain"), rec).ok);
  EXPECT_EQ(rec.events, (std::vector<event>{compressed(opcode::text, raw), msg(opcode::text, "plain")}));
}

TEST(frame_parser_rsv1, fragmented_compressed_message_has_rsv1_on_the_first_frame_only) {
  for (std::size_t cut = 0; cut < 40; cut += 3) {
    frame_parser p(1000, true);
    recorder rec;
    const bytes wire = concat({compressed_frame(opcode::text, "\xc3", false), frame(opcode::ping, "p"),
                               frame(opcode::continuation, "\x28tail", true)});
    ASSERT_TRUE(feed_split(p, wire, rec, {std::min(cut, wire.size())}).ok) << cut;
    EXPECT_EQ(rec.events, (std::vector<event>{ping("p"), compressed(opcode::text, "\xc3\x28tail")})) << cut;
  }
}

TEST(frame_parser_rsv1, rsv1_on_a_continuation_frame_is_a_protocol_error) {
  frame_parser p(1000, true);
  recorder rec;
  const auto r = feed_all(
      p, concat({frame(opcode::text, "a", false), frame(opcode::continuation, "b", true, key0, true)}), rec);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, close_code::protocol_error);
}

TEST(frame_parser_rsv1, compressed_control_frames_are_protocol_errors) {
  for (opcode op : {opcode::ping, opcode::pong, opcode::close}) {
    frame_parser p(1000, true);
    recorder rec;
    const auto r = feed_all(p, compressed_frame(op, ""), rec);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, close_code::protocol_error);
    EXPECT_TRUE(rec.events.empty());
  }
}

TEST(frame_parser_rsv1, rsv2_and_rsv3_stay_errors_with_compression) {
  for (std::uint8_t bit : {0x20, 0x10}) {
    frame_parser p(1000, true);
    recorder rec;
    bytes wire = frame(opcode::text, "x");
    wire[0] |= bit;
    EXPECT_FALSE(feed_all(p, wire, rec).ok);
  }
}

TEST(frame_parser_rsv1, compressed_size_is_bounded_by_the_maximum_as_received) {
  frame_parser p(10, true);
  recorder rec;
  const auto r = feed_all(p, compressed_frame(opcode::binary, std::string(11, 'z')), rec);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, close_code::message_too_big);
}

}  // namespace
}  // namespace bc::ws
