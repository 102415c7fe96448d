#pragma once
// Comma-separated lists, as HTTP headers (RFC 9110 5.6.1), configuration values and query parameters write
// them.

#include <optional>
#include <string_view>

namespace bc::util {

// Takes the next element off the front of `list` ("gzip, chunked", "a,,b"): trimmed of spaces and tabs and
// never empty (empty elements are skipped). Nothing once the list is used up. Usage:
//   while (const auto item = next_list_item(list)) ...
constexpr std::optional<std::string_view> next_list_item(std::string_view& list) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    auto item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) return item;
  }
  return std::nullopt;
}

}  // namespace bc::util
