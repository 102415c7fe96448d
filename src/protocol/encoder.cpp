#include "protocol/encoder.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include "protocol/time_format.hpp"

namespace bc::protocol {

std::string json_quote(std::string_view s) {
  return boost::json::serialize(boost::json::string(s));
}

namespace {
std::string open_reply(std::string_view id_json) {
  std::string out;
  out.reserve(96);
  out += '{';
  if (!id_json.empty()) {
    out += "\"requestId\":";
    out += id_json;
    out += ',';
  }
  return out;
}

void append_error_object(std::string& out, error_code code, std::string_view message) {
  out += "{\"code\":\"";
  out += to_string(code);
  out += "\",\"message\":";
  out += json_quote(message);
  out += '}';
}
}  // namespace

std::string encode_result(std::string_view id_json, std::string_view result_json) {
  std::string out = open_reply(id_json);
  out += "\"result\":";
  out += result_json;
  out += '}';
  return out;
}

std::string encode_error(std::string_view id_json, error_code code, std::string_view message) {
  std::string out = open_reply(id_json);
  out += "\"error\":";
  append_error_object(out, code, message);
  out += '}';
  return out;
}

std::string encode_error_body(error_code code, std::string_view message) {
  std::string out = "{\"error\":";
  append_error_object(out, code, message);
  out += '}';
  return out;
}

std::string encode_publish_result(const core::message& msg) {
  std::string out = "{\"id\":\"";
  out += msg.id;
  out += "\",\"createTime\":\"";
  out += format_rfc3339_ms(msg.create_time_ms);
  out += "\"}";
  return out;
}

core::publication_ptr encode_publication(core::message msg) {
  auto pub = std::make_shared<core::publication>();
  pub->head = "{\"method\":\"broadcast\",\"params\":{\"seq\":";
  std::string& t = pub->tail;
  t.reserve(msg.payload.size() + msg.channel.size() + msg.event.size() + 96);
  t += ",\"id\":\"";
  t += msg.id;  // UUID text, nothing to escape
  t += "\",\"createTime\":\"";
  t += format_rfc3339_ms(msg.create_time_ms);
  t += "\",\"channel\":\"";
  t += msg.channel;  // validated: letters, digits, _ - :
  t += "\",\"event\":";
  t += json_quote(msg.event);
  t += ",\"payload\":";
  t += msg.payload;
  t += "}}";
  pub->channel = std::move(msg.channel);
  return pub;
}

}  // namespace bc::protocol
