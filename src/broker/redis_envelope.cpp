#include "broker/redis_envelope.hpp"

#include <cstdint>
#include <string>

namespace bc::broker {

namespace {

constexpr char magic = static_cast<char>(0xBC);
constexpr char version1 = 0x01;
constexpr char version2 = 0x02;
constexpr char version3 = 0x03;
constexpr char kind_join = 'j';
constexpr char kind_leave = 'l';
constexpr char kind_disconnect = 'd';
constexpr char kind_unsubscribe = 'u';

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

// A version-3 envelope's kind and channel; `in` is left at what follows.
bool decode_v3_head(std::string_view& in, char& kind, std::string& channel) {
  if (in.size() < 3 || in[0] != magic || in[1] != version3) return false;
  kind = in[2];
  in.remove_prefix(3);
  return get_field(in, channel);
}

}  // namespace

std::string encode_presence_record(const core::presence_member& m) {
  std::string out;
  out.reserve(4 + m.client_id.size() + m.user.size() + m.info.size());
  put_field(out, m.client_id);
  put_field(out, m.user);
  out += m.info;
  return out;
}

bool decode_presence_record(std::string_view in, core::presence_member& out) {
  if (!get_field(in, out.client_id) || out.client_id.empty() || !get_field(in, out.user)) return false;
  out.info.assign(in);
  return true;
}

std::string encode_presence_header(core::message::kind type, std::string_view channel) {
  std::string out{magic, version3, type == core::message::kind::join ? kind_join : kind_leave};
  put_field(out, channel);
  return out;
}

std::string encode_control_envelope(const control_message& msg) {
  const bool disconnect = msg.what == control_message::kind::disconnect_user;
  std::string out{magic, version3, disconnect ? kind_disconnect : kind_unsubscribe};
  put_field(out, disconnect ? std::string_view() : std::string_view(msg.channel));
  put_field(out, msg.user);
  return out;
}

bool decode_control_envelope(std::string_view in, control_message& out) {
  char kind = 0;
  if (!decode_v3_head(in, kind, out.channel) || (kind != kind_disconnect && kind != kind_unsubscribe)) {
    return false;
  }
  out.what = kind == kind_disconnect ? control_message::kind::disconnect_user
                                     : control_message::kind::unsubscribe_user;
  if (!get_field(in, out.user) || !in.empty() || out.user.empty()) return false;
  return kind == kind_disconnect ? out.channel.empty() : !out.channel.empty();
}

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
  if (version == version3) {
    char kind = 0;
    core::presence_member m;
    if (!decode_v3_head(in, kind, out.channel) || (kind != kind_join && kind != kind_leave) ||
        out.channel.empty() || !decode_presence_record(in, m)) {
      return false;
    }
    out.type = kind == kind_join ? core::message::kind::join : core::message::kind::leave;
    out.id = std::move(m.client_id);
    out.event = std::move(m.user);
    out.payload = std::move(m.info);
    out.create_time_ms = 0;
    out.offset = 0;
    out.epoch.clear();
    return true;
  }
  out.type = core::message::kind::publication;
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
