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

namespace {
// ,"id":..,"createTime":..,"channel":..[,"offset":..,"epoch":..],"event":..,"payload":..: the fields a
// broadcast and a history entry share.
void append_message_fields(std::string& t, const core::message& msg) {
  t += "\"id\":\"";
  t += msg.id;  // UUID text, nothing to escape
  t += "\",\"createTime\":\"";
  t += format_rfc3339_ms(msg.create_time_ms);
  t += "\",\"channel\":\"";
  t += msg.channel;  // validated: letters, digits, _ - :
  t += '"';
  if (msg.offset != 0) {
    t += ",\"offset\":";
    t += std::to_string(msg.offset);
    t += ",\"epoch\":";
    t += json_quote(msg.epoch);  // from Redis: quoted, whoever wrote it
  }
  t += ",\"event\":";
  t += json_quote(msg.event);
  t += ",\"payload\":";
  t += msg.payload;
}
}  // namespace

namespace {
// {"method":"join"|"leave","params":{"channel","clientId","user","info"?}}: the whole frame in the tail.
core::publication_ptr encode_presence_event(core::message msg) {
  auto pub = std::make_shared<core::publication>();
  pub->presence_event = true;
  std::string& t = pub->tail;
  t.reserve(msg.channel.size() + msg.id.size() + msg.event.size() + msg.payload.size() + 96);
  t += msg.type == core::message::kind::join ? R"({"method":"join","params":{"channel":)"
                                             : R"({"method":"leave","params":{"channel":)";
  t += json_quote(msg.channel);
  t += ",\"clientId\":";
  t += json_quote(msg.id);
  t += ",\"user\":";
  t += json_quote(msg.event);
  if (!msg.payload.empty()) {
    t += ",\"info\":";
    t += msg.payload;
  }
  t += "}}";
  pub->from = std::move(msg.id);
  pub->channel = std::move(msg.channel);
  return pub;
}
}  // namespace

core::publication_ptr encode_publication(core::message msg) {
  if (msg.type != core::message::kind::publication) return encode_presence_event(std::move(msg));
  auto pub = std::make_shared<core::publication>();
  pub->head = "{\"method\":\"broadcast\",\"params\":{\"seq\":";
  std::string& t = pub->tail;
  t.reserve(msg.payload.size() + msg.channel.size() + msg.event.size() + msg.epoch.size() + 128);
  t += ',';
  append_message_fields(t, msg);
  t += "}}";
  pub->offset = msg.offset;
  pub->epoch = std::move(msg.epoch);
  pub->channel = std::move(msg.channel);
  return pub;
}

std::string encode_position(const broker::stream_position& pos) {
  return "\"epoch\":" + json_quote(pos.epoch) + ",\"offset\":" + std::to_string(pos.offset);
}

std::string encode_presence_result(const broker::presence_result& r) {
  std::size_t size = 32;
  for (const auto& m : r.clients) size += m.client_id.size() + m.user.size() + m.info.size() + 32;
  std::string out;
  out.reserve(size);
  out += "{\"clients\":{";
  for (const auto& m : r.clients) {
    if (out.back() != '{') out += ',';
    out += json_quote(m.client_id);
    out += ":{\"user\":";
    out += json_quote(m.user);
    if (!m.info.empty()) {
      out += ",\"info\":";
      out += m.info;
    }
    out += '}';
  }
  out += '}';
  if (r.truncated) out += ",\"truncated\":true";
  out += '}';
  return out;
}

std::string encode_presence_stats(const core::presence_counts& c) {
  return "{\"numClients\":" + std::to_string(c.clients) + ",\"numUsers\":" + std::to_string(c.users) + "}";
}

std::string encode_history_result(const broker::history_result& r) {
  std::size_t size = 64;
  for (const auto& m : r.messages) size += m.payload.size() + m.event.size() + m.channel.size() + 128;
  std::string out;
  out.reserve(size);
  out += "{\"publications\":[";
  for (const auto& m : r.messages) {
    if (out.back() != '[') out += ',';
    out += '{';
    append_message_fields(out, m);
    out += '}';
  }
  out += "],";
  out += encode_position(r.top);
  out += '}';
  return out;
}

}  // namespace bc::protocol
