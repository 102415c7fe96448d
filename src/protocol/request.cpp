#include "protocol/request.hpp"

#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>

#include "protocol/encoder.hpp"

namespace bc::protocol {

std::optional<method> parse_method(std::string_view name) {
  if (name == "publish") return method::publish;
  if (name == "subscribe") return method::subscribe;
  if (name == "unsubscribe") return method::unsubscribe;
  if (name == "heartbeat") return method::heartbeat;
  if (name == "auth") return method::auth;
  return std::nullopt;
}

std::string_view to_string(method m) {
  switch (m) {
    case method::auth:
      return "auth";
    case method::subscribe:
      return "subscribe";
    case method::unsubscribe:
      return "unsubscribe";
    case method::publish:
      return "publish";
    case method::heartbeat:
      return "heartbeat";
  }
  return "unknown";
}

std::optional<boost::json::value> parse_json(std::string_view text, std::string& message,
                                             boost::json::storage_ptr storage) {
  boost::json::parse_options opts;
  opts.max_depth = max_json_depth;
  boost::json::parser p({}, opts);
  p.reset(std::move(storage));
  boost::system::error_code ec;
  p.write(text.data(), text.size(), ec);  // the whole document: trailing or missing bytes are errors
  if (ec) {
    message =
        ec == boost::json::error::too_deep ? "JSON nested too deeply" : "malformed JSON: " + ec.message();
    return std::nullopt;
  }
  return p.release();
}

namespace {

// Returns false for an id that is neither absent, null, a number nor a string.
bool read_id(const boost::json::object& obj, std::string& id_json) {
  auto it = obj.find("id");
  if (it == obj.end() || it->value().is_null()) return true;
  const auto& id = it->value();
  if (id.is_double() && !std::isfinite(id.get_double())) return false;  // 1e400: no JSON can echo it
  if (id.is_number()) {
    const bool zero = (id.is_int64() && id.get_int64() == 0) || (id.is_uint64() && id.get_uint64() == 0) ||
                      (id.is_double() && id.get_double() == 0.0);
    // The shortest form that reads back as the same number: 1.5 is echoed as 1.5, not as Boost's 1.5E0.
    if (!zero) append_json(id_json, id);
    return true;
  }
  if (id.is_string()) {
    id_json = boost::json::serialize(id);
    return true;
  }
  return false;
}

}  // namespace

parse_result parse_request(std::string_view text, boost::json::storage_ptr storage) {
  parse_result out;
  auto doc = parse_json(text, out.message, storage);
  if (!doc) return out;
  if (!doc->is_object()) {
    out.message = "request must be a JSON object";
    return out;
  }
  auto& obj = doc->get_object();
  if (!read_id(obj, out.id_json)) {
    out.message = "id must be a number or a string";
    return out;
  }
  auto m = obj.find("method");
  if (m == obj.end() || !m->value().is_string()) {
    out.message = m == obj.end() ? "missing method" : "method must be a string";
    return out;
  }
  const auto verb = parse_method(m->value().get_string());
  if (!verb) {
    out.code = error_code::not_found;
    out.message = "unknown method";
    return out;
  }
  request req;
  req.params = boost::json::object(storage);  // same storage as the document: the move below is a move
  req.id_json = out.id_json;
  req.verb = *verb;
  auto p = obj.find("params");
  if (p != obj.end() && !p->value().is_null()) {
    if (!p->value().is_object()) {
      out.message = "params must be an object";
      return out;
    }
    req.params = std::move(p->value().get_object());
  }
  out.req = std::move(req);
  return out;
}

std::optional<std::string_view> string_param(const boost::json::object& params, std::string_view key,
                                             std::string& message) {
  auto it = params.find(key);
  if (it == params.end() || !it->value().is_string()) {
    message = "params." + std::string(key) + (it == params.end() ? " is required" : " must be a string");
    return std::nullopt;
  }
  const auto& s = it->value().get_string();
  return std::string_view(s.data(), s.size());
}

}  // namespace bc::protocol
