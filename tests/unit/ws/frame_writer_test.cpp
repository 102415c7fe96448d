#include "net/ws/frame_writer.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "net/ws/frame_parser.hpp"

namespace bc::ws {
namespace {

using bytes = std::vector<std::uint8_t>;

bytes header(opcode op, std::uint64_t len, bool fin = true) {
  std::uint8_t out[max_header_bytes];
  return bytes(out, out + write_header(out, op, len, fin));
}

bytes masked_header(opcode op, std::uint64_t len, std::array<std::uint8_t, 4> key, bool fin = true) {
  std::uint8_t out[max_header_bytes];
  return bytes(out, out + write_masked_header(out, op, len, key, fin));
}

TEST(frame_writer, rfc_examples_unmasked) {
  // RFC 6455 5.7: unmasked "Hello", fragments "Hel"+"lo", ping "Hello", 256-byte and 64 KiB binary.
  EXPECT_EQ(encode_frame(opcode::text, "Hello"), std::string("\x81\x05Hello"));
  EXPECT_EQ(header(opcode::text, 3, false), (bytes{0x01, 0x03}));
  EXPECT_EQ(header(opcode::continuation, 2, true), (bytes{0x80, 0x02}));
  EXPECT_EQ(encode_frame(opcode::ping, "Hello"), std::string("\x89\x05Hello"));
  EXPECT_EQ(header(opcode::binary, 256), (bytes{0x82, 0x7E, 0x01, 0x00}));
  EXPECT_EQ(header(opcode::binary, 65536), (bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}));
}

TEST(frame_writer, rfc_example_masked) {
  const std::array<std::uint8_t, 4> key{0x37, 0xfa, 0x21, 0x3d};
  bytes frame = masked_header(opcode::text, 5, key);
  std::string payload = "Hello";
  apply_mask(reinterpret_cast<std::uint8_t*>(payload.data()), payload.size(), key);
  frame.insert(frame.end(), payload.begin(), payload.end());
  EXPECT_EQ(frame, (bytes{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
}

TEST(frame_writer, every_length_class) {
  struct length_case {
    std::uint64_t len;
    bytes expected;
  };
  const length_case cases[] = {
      {0, {0x82, 0x00}},
      {125, {0x82, 0x7D}},
      {126, {0x82, 0x7E, 0x00, 0x7E}},
      {65535, {0x82, 0x7E, 0xFF, 0xFF}},
      {65536, {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}},
      {0x0102030405060708ULL, {0x82, 0x7F, 1, 2, 3, 4, 5, 6, 7, 8}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(header(opcode::binary, c.len), c.expected) << c.len;
    bytes masked = c.expected;
    masked[1] |= 0x80;
    masked.insert(masked.end(), {9, 8, 7, 6});
    EXPECT_EQ(masked_header(opcode::binary, c.len, {9, 8, 7, 6}), masked) << c.len;
  }
}

TEST(frame_writer, header_sizes) {
  std::uint8_t out[max_header_bytes];
  EXPECT_EQ(write_header(out, opcode::text, 125), 2u);
  EXPECT_EQ(write_header(out, opcode::text, 126), 4u);
  EXPECT_EQ(write_header(out, opcode::text, 65535), 4u);
  EXPECT_EQ(write_header(out, opcode::text, 65536), 10u);
  EXPECT_EQ(write_masked_header(out, opcode::text, 125, {1, 2, 3, 4}), 6u);
  EXPECT_EQ(write_masked_header(out, opcode::text, 126, {1, 2, 3, 4}), 8u);
  EXPECT_EQ(write_masked_header(out, opcode::text, 1ULL << 40, {1, 2, 3, 4}), max_header_bytes);
}

TEST(frame_writer, fin_and_opcode_bits) {
  EXPECT_EQ(header(opcode::close, 0)[0], 0x88);
  EXPECT_EQ(header(opcode::pong, 0)[0], 0x8A);
  EXPECT_EQ(header(opcode::binary, 0, false)[0], 0x02);
  EXPECT_EQ(header(opcode::continuation, 0, false)[0], 0x00);
}

TEST(frame_writer, apply_mask_matches_naive_for_every_length_and_offset) {
  const std::array<std::uint8_t, 4> key{0xA1, 0xB2, 0xC3, 0xD4};
  std::mt19937 rng(7);
  for (std::size_t len = 0; len < 100; ++len) {
    for (std::size_t offset = 0; offset < 9; ++offset) {
      bytes data(len);
      for (auto& b : data) b = static_cast<std::uint8_t>(rng());
      bytes expected = data;
      for (std::size_t i = 0; i < len; ++i) expected[i] ^= key[(offset + i) % 4];
      apply_mask(data.data(), data.size(), key, offset);
      ASSERT_EQ(data, expected) << len << " " << offset;
    }
  }
}

TEST(frame_writer, apply_mask_in_pieces_equals_whole) {
  const std::array<std::uint8_t, 4> key{1, 2, 3, 250};
  bytes whole(1000);
  for (std::size_t i = 0; i < whole.size(); ++i) whole[i] = static_cast<std::uint8_t>(i * 31);
  bytes pieces = whole;
  apply_mask(whole.data(), whole.size(), key);
  for (std::size_t at = 0, step = 1; at < pieces.size(); at += step, step = step % 13 + 1) {
    const std::size_t n = std::min(step, pieces.size() - at);
    apply_mask(pieces.data() + at, n, key, at);
  }
  EXPECT_EQ(pieces, whole);
}

TEST(frame_writer, apply_mask_twice_restores) {
  std::string s = "the quick brown fox jumps over the lazy dog";
  const std::string original = s;
  auto* p = reinterpret_cast<std::uint8_t*>(s.data());
  apply_mask(p, s.size(), {0xDE, 0xAD, 0xBE, 0xEF}, 3);
  EXPECT_NE(s, original);
  apply_mask(p, s.size(), {0xDE, 0xAD, 0xBE, 0xEF}, 3);
  EXPECT_EQ(s, original);
}

TEST(frame_writer, close_payload) {
  EXPECT_EQ(make_close_payload(close_code::normal, ""), std::string("\x03\xE8", 2));
  EXPECT_EQ(make_close_payload(close_code::going_away, "bye"), std::string("\x03\xE9"
                                                                           "bye",
                                                                           5));
  EXPECT_EQ(make_close_payload(close_code::token_expired, "token expired"),
            std::string("\x0F\xA1token expired"));
  // Codes that never appear on the wire give a close frame without status.
  EXPECT_EQ(make_close_payload(close_code::no_status, "x"), "");
  EXPECT_EQ(make_close_payload(close_code::abnormal, "x"), "");
}

TEST(frame_writer, close_payload_truncates_reason_to_123_bytes) {
  const std::string p = make_close_payload(close_code::policy_violation, std::string(500, 'r'));
  EXPECT_EQ(p.size(), 125u);
  EXPECT_EQ(p.substr(2), std::string(123, 'r'));
}

TEST(frame_writer, close_payload_truncates_on_utf8_boundary) {
  // 122 ASCII bytes then a 3-byte euro sign: byte 123 would split it, so the whole sign goes.
  const std::string reason = std::string(122, 'a') + "\xE2\x82\xAC" + "tail";
  const std::string p = make_close_payload(close_code::internal_error, reason);
  EXPECT_EQ(p.substr(2), std::string(122, 'a'));
  // 120 ASCII + euro fits exactly in 123.
  const std::string exact = std::string(120, 'a') + "\xE2\x82\xAC" + "tail";
  EXPECT_EQ(make_close_payload(close_code::internal_error, exact).substr(2), exact.substr(0, 123));
  // All 4-byte characters: 123 = 30 * 4 + 3, so 30 survive.
  std::string emoji;
  for (int i = 0; i < 40; ++i) emoji += "\xF0\x9F\x98\x80";
  EXPECT_EQ(make_close_payload(close_code::normal, emoji).size(), 2u + 120u);
}

TEST(frame_writer, encode_frame_lengths) {
  EXPECT_EQ(encode_frame(opcode::pong, ""), std::string("\x8A\x00", 2));
  const std::string big(300, 'x');
  const std::string f = encode_frame(opcode::binary, big);
  EXPECT_EQ(f.size(), 4u + 300u);
  EXPECT_EQ(f.substr(0, 4), std::string("\x82\x7E\x01\x2C", 4));
  EXPECT_EQ(f.substr(4), big);
}

// Records what the parser delivers.
struct capture : frame_handler {
  std::vector<std::pair<opcode, std::string>> messages;
  std::vector<std::pair<std::uint16_t, std::string>> closes;
  void on_message(opcode op, std::string_view p) override { messages.emplace_back(op, std::string(p)); }
  void on_compressed_message(opcode, std::string_view) override { ADD_FAILURE() << "no compression here"; }
  void on_ping(std::string_view) override {}
  void on_pong(std::string_view) override {}
  void on_close(std::uint16_t code, std::string_view r) override {
    closes.emplace_back(code, std::string(r));
  }
};

TEST(frame_writer, masked_round_trip_through_parser) {
  std::mt19937 rng(99);
  for (std::size_t len : {0u, 1u, 5u, 125u, 126u, 127u, 1000u, 65535u, 65536u, 100000u}) {
    std::string payload(len, ' ');
    for (char& c : payload) c = static_cast<char>(rng());
    const std::array<std::uint8_t, 4> key{static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng()),
                                          static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng())};
    bytes wire = masked_header(opcode::binary, len, key);
    const std::size_t h = wire.size();
    wire.insert(wire.end(), payload.begin(), payload.end());
    apply_mask(wire.data() + h, len, key);

    frame_parser parser(1 << 20);
    capture cap;
    const auto r = parser.feed(wire, cap);
    ASSERT_TRUE(r.ok) << r.reason;
    ASSERT_EQ(cap.messages.size(), 1u) << len;
    EXPECT_EQ(cap.messages[0].first, opcode::binary);
    EXPECT_EQ(cap.messages[0].second, payload) << len;
  }
}

TEST(frame_writer, close_payload_round_trip_through_parser) {
  const std::string body = make_close_payload(close_code::going_away, "server restart \xE2\x9C\x93");
  const std::array<std::uint8_t, 4> key{5, 6, 7, 8};
  bytes wire = masked_header(opcode::close, body.size(), key);
  const std::size_t h = wire.size();
  wire.insert(wire.end(), body.begin(), body.end());
  apply_mask(wire.data() + h, body.size(), key);
  frame_parser parser;
  capture cap;
  ASSERT_TRUE(parser.feed(wire, cap).ok);
  ASSERT_EQ(cap.closes.size(), 1u);
  EXPECT_EQ(cap.closes[0].first, 1001);
  EXPECT_EQ(cap.closes[0].second, "server restart \xE2\x9C\x93");
}

}  // namespace
}  // namespace bc::ws
