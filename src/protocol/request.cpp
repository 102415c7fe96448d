#include "protocol/request.hpp"

#include <boost/json/parser.hpp>

#include "protocol/raw_json.hpp"

namespace bc::protocol {

std::optional<method> parse_method(std::string_view name) {
  if (name == "publish") return method::publish;
  if (name == "subscribe") return method::subscribe;
  if (name == "unsubscribe") return method::unsubscribe;
  if (name == "heartbeat") return method::heartbeat;
  if (name == "auth") return method::auth;
  if (name == "history") return method::history;
  if (name == "presence") return method::presence;
  if (name == "presenceStats") return method::presence_stats;
  return std::nullopt;
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

// Returns false for an id that is neither absent, null, a number nor a string. `raw` is the id's source text,
// echoed unchanged: no number is rounded, and 1e400 (infinite as a double) stays 1e400.
bool read_id(const boost::json::object& obj, std::string_view raw, std::string& id_json) {
  auto it = obj.find("id");
  if (it == obj.end() || it->value().is_null()) return true;
  const auto& id = it->value();
  // Zero is judged on the text, not the double: 1e-400 reads as 0.0 but is a real id.
  if (id.is_number() && raw_json::is_zero(raw)) return true;
  if (!id.is_number() && !id.is_string()) return false;
  id_json = raw;
  return true;
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
  // The source text of the members the DOM cannot give back as written, in one pass over the request.
  static constexpr std::string_view raw_keys[] = {"id", "params"};
  std::string_view raw[2];
  raw_json::find_members(text, raw_keys, raw);
  if (!read_id(obj, raw[0], out.id_json)) {
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
    if (req.verb == method::publish) req.payload_json = raw_json::find_member(raw[1], "payload");
  }
  out.req = std::move(req);
  return out;
}

std::optional<std::string_view> string_param(const boost::json::object& params, std::string_view key,
                                             std::string& message) {
  auto it = params.find(key);
  if (it == params.end() || !it->value().is_string()) {
    message = std::string(key) + (it == params.end() ? " is required" : " must be a string");
    return std::nullopt;
  }
  const auto& s = it->value().get_string();
  return std::string_view(s.data(), s.size());
}

}  // namespace bc::protocol
