#include "protocol/position_params.hpp"

#include <charconv>

namespace bc::protocol {

namespace {
// A JSON integer >= 0 (not 1.0: an offset written as a float is a client bug worth telling).
std::optional<std::uint64_t> count_of(const boost::json::value& v) {
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  return std::nullopt;
}
}  // namespace

bool read_since(const boost::json::object& params, std::optional<broker::stream_position>& out,
                std::string& message) {
  const auto it = params.find("since");
  if (it == params.end() || it->value().is_null()) return true;
  const auto* since = it->value().if_object();
  if (since == nullptr) {
    message = "since must be an object {\"epoch\": string, \"offset\": integer}";
    return false;
  }
  const auto epoch = since->find("epoch");
  if (epoch == since->end() || !epoch->value().is_string() || epoch->value().get_string().empty() ||
      epoch->value().get_string().size() > max_epoch_length) {
    message = "since.epoch must be a non-empty string of at most 64 characters";
    return false;
  }
  const auto offset = since->find("offset");
  const auto n = offset == since->end() ? std::nullopt : count_of(offset->value());
  if (!n) {
    message = "since.offset must be an integer >= 0";
    return false;
  }
  out = broker::stream_position{std::string(epoch->value().get_string()), *n};
  return true;
}

bool read_limit(const boost::json::object& params, std::optional<std::uint64_t>& out, std::string& message) {
  const auto it = params.find("limit");
  if (it == params.end() || it->value().is_null()) return true;
  out = count_of(it->value());
  if (!out) message = "limit must be an integer >= 0";
  return out.has_value();
}

std::optional<std::uint64_t> parse_count(std::string_view text) {
  std::uint64_t v = 0;
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || p != end) return std::nullopt;
  return v;
}

}  // namespace bc::protocol
