#include "protocol/raw_json.hpp"

#include <cstdint>

#include "util/hex.hpp"

namespace bc::protocol::raw_json {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

std::size_t skip_space(std::string_view t, std::size_t i) {
  while (i < t.size() && is_space(t[i])) ++i;
  return i;
}

// `i` is at an opening quote; returns the index just past the closing one.
std::size_t skip_string(std::string_view t, std::size_t i) {
  for (++i; i < t.size(); ++i) {
    if (t[i] == '"') return i + 1;
    if (t[i] == '\\') ++i;  // the escaped character, whatever it is, cannot close the string
  }
  return t.size();
}

// `i` is at the first byte of a value; returns the index just past its last byte. Containers are skipped by
// counting brackets (the text is valid, so they pair up), never by recursing.
std::size_t skip_value(std::string_view t, std::size_t i) {
  if (i >= t.size()) return i;
  if (t[i] == '"') return skip_string(t, i);
  if (t[i] == '{' || t[i] == '[') {
    std::size_t depth = 0;
    while (i < t.size()) {
      const char c = t[i];
      if (c == '"') {
        i = skip_string(t, i);
        continue;
      }
      ++i;
      if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i;
      }
    }
    return i;
  }
  // A number or a literal: it ends where the enclosing structure or the document resumes.
  while (i < t.size() && !is_space(t[i]) && t[i] != ',' && t[i] != '}' && t[i] != ']') ++i;
  return i;
}

// The four hex digits at t[i..i+4), or -1.
long hex4(std::string_view t, std::size_t i) {
  if (i + 4 > t.size()) return -1;
  long v = 0;
  for (std::size_t k = 0; k < 4; ++k) {
    const int d = util::hex_value(t[i + k]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// Compares the UTF-8 encoding of `cp` with key[pos..], advancing pos.
bool match_code_point(std::uint32_t cp, std::string_view key, std::size_t& pos) {
  char buf[4];
  std::size_t n = 0;
  if (cp < 0x80) {
    buf[n++] = static_cast<char>(cp);
  } else if (cp < 0x800) {
    buf[n++] = static_cast<char>(0xC0 | (cp >> 6));
    buf[n++] = static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    buf[n++] = static_cast<char>(0xE0 | (cp >> 12));
    buf[n++] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    buf[n++] = static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    buf[n++] = static_cast<char>(0xF0 | (cp >> 18));
    buf[n++] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    buf[n++] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    buf[n++] = static_cast<char>(0x80 | (cp & 0x3F));
  }
  if (key.size() - pos < n || key.substr(pos, n) != std::string_view(buf, n)) return false;
  pos += n;
  return true;
}

// The code point of the \u escape whose hex digits start at t[i], joined with its low surrogate when it is a
// high one; advances i past them. -1 when malformed (Boost.JSON refuses lone surrogates).
long decode_u_escape(std::string_view t, std::size_t& i) {
  const long hi = hex4(t, i);
  if (hi < 0) return -1;
  i += 4;
  if (hi >= 0xDC00 && hi <= 0xDFFF) return -1;
  if (hi < 0xD800 || hi > 0xDBFF) return hi;
  if (i + 6 > t.size() || t[i] != '\\' || t[i + 1] != 'u') return -1;
  const long lo = hex4(t, i + 2);
  if (lo < 0xDC00 || lo > 0xDFFF) return -1;
  i += 6;
  return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
}

// The character a one-letter escape stands for (\n is a newline), or 0 for anything else.
char simple_escape(char e) {
  switch (e) {
    case '"':
    case '\\':
    case '/':
      return e;
    case 'b':
      return '\b';
    case 'f':
      return '\f';
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    default:
      return 0;
  }
}

// Decodes the escape starting at t[i] == '\\' and compares it with key[pos..]; advances both.
bool match_escape(std::string_view t, std::size_t& i, std::string_view key, std::size_t& pos) {
  if (i + 1 >= t.size()) return false;
  const char e = t[i + 1];
  i += 2;
  if (e == 'u') {
    const long cp = decode_u_escape(t, i);
    return cp >= 0 && match_code_point(static_cast<std::uint32_t>(cp), key, pos);
  }
  const char c = simple_escape(e);
  if (c == 0 || pos >= key.size() || key[pos] != c) return false;
  ++pos;
  return true;
}

}  // namespace

bool key_equals(std::string_view key_text, std::string_view key) {
  if (key_text.find('\\') == std::string_view::npos) return key_text == key;  // the usual case
  std::size_t i = 0;
  std::size_t pos = 0;
  while (i < key_text.size()) {
    if (key_text[i] == '\\') {
      if (!match_escape(key_text, i, key, pos)) return false;
    } else {
      if (pos >= key.size() || key[pos] != key_text[i]) return false;
      ++pos;
      ++i;
    }
  }
  return pos == key.size();
}

void find_members(std::string_view t, std::span<const std::string_view> keys,
                  std::span<std::string_view> values) {
  for (std::size_t k = 0; k < keys.size(); ++k) values[k] = {};
  std::size_t i = skip_space(t, 0);
  if (i >= t.size() || t[i] != '{') return;
  ++i;
  while (true) {
    i = skip_space(t, i);
    if (i >= t.size() || t[i] != '"') return;  // '}' (an empty object) or not valid JSON
    const std::size_t key_end = skip_string(t, i);
    if (key_end < i + 2) return;
    const std::string_view key_text = t.substr(i + 1, key_end - i - 2);
    i = skip_space(t, key_end);
    if (i >= t.size() || t[i] != ':') return;
    const std::size_t value_begin = skip_space(t, i + 1);
    const std::size_t value_end = skip_value(t, value_begin);
    if (value_end <= value_begin) return;
    for (std::size_t k = 0; k < keys.size(); ++k) {
      // No early exit on a match: a later duplicate replaces it, as in the DOM.
      if (key_equals(key_text, keys[k])) values[k] = t.substr(value_begin, value_end - value_begin);
    }
    i = skip_space(t, value_end);
    if (i >= t.size() || t[i] != ',') return;  // '}': the end of the object
    ++i;
  }
}

std::string_view find_member(std::string_view object_text, std::string_view key) {
  std::string_view value;
  find_members(object_text, std::span<const std::string_view>(&key, 1),
               std::span<std::string_view>(&value, 1));
  return value;
}

bool is_zero(std::string_view number_text) {
  bool digits = false;
  for (const char c : number_text) {
    if (c == 'e' || c == 'E') break;  // the exponent scales the mantissa; it cannot make zero nonzero
    if (c >= '1' && c <= '9') return false;
    digits |= c == '0';
  }
  return digits;
}

}  // namespace bc::protocol::raw_json
