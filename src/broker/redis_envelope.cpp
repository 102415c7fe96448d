#include "broker/redis_envelope.hpp"

#include <cstdint>
#include <string>

namespace bc::broker {

namespace {

constexpr char magic = static_cast<char>(0xBC);
constexpr char version1 = 0x01;
constexpr char version2 = 0x02;

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

bool get_varint(std::string_view& in, std::uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    const auto byte = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;  // more than 10 bytes
}

void put_field(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out += s;
}

bool get_field(std::string_view& in, std::string& out) {
  std::uint64_t n = 0;
  if (!get_varint(in, n) || n > in.size()) return false;
  out.assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

// Decimal digits, no sign, no leading zero, >= 1, fits 64 bits.
bool parse_offset(std::string_view s, std::uint64_t& v) {
  if (s.empty() || s.size() > 20 || s[0] == '0') return false;
  v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  return true;
}

bool decode_body(std::string_view in, core::message& out) {
  std::uint64_t t = 0;
  if (!get_varint(in, t)) return false;
  out.create_time_ms = static_cast<std::int64_t>(t);
  if (!get_field(in, out.id) || !get_field(in, out.channel) || !get_field(in, out.event)) return false;
  out.payload.assign(in);
  return true;
}

}  // namespace

std::string encode_envelope_body(const core::message& msg) {
  std::string out;
  out.reserve(10 + 3 + msg.id.size() + msg.channel.size() + msg.event.size() + msg.payload.size() + 4);
  put_varint(out, static_cast<std::uint64_t>(msg.create_time_ms));
  put_field(out, msg.id);
  put_field(out, msg.channel);
  put_field(out, msg.event);
  out += msg.payload;
  return out;
}

std::string encode_envelope(const core::message& msg) {
  std::string out{magic, version1};
  out += encode_envelope_body(msg);
  return out;
}

std::string encode_envelope_v2(const core::message& msg) {
  std::string out{magic, version2};
  put_field(out, msg.epoch);
  put_field(out, std::to_string(msg.offset));
  out += encode_envelope_body(msg);
  return out;
}

bool decode_envelope(std::string_view in, core::message& out) {
  if (in.size() < 2 || in[0] != magic) return false;
  const char version = in[1];
  in.remove_prefix(2);
  if (version == version1) {
    out.offset = 0;
    out.epoch.clear();
    return decode_body(in, out);
  }
  if (version != version2) return false;
  std::string offset;
  if (!get_field(in, out.epoch) || out.epoch.empty() || !get_field(in, offset) ||
      !parse_offset(offset, out.offset)) {
    return false;
  }
  return decode_body(in, out);
}

}  // namespace bc::broker
