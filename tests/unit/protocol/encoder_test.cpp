#include "protocol/encoder.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "../../support/same_json.hpp"
#include "broker/redis_envelope.hpp"
#include "core/message.hpp"
#include "protocol/error_code.hpp"

namespace bc::protocol {
namespace {

namespace json = boost::json;

json::value parse(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  return v;
}

using bc::testing::same_json;

core::message sample_message(std::string payload) {
  core::message m;
  m.id = "019b76da-a87b-7123-8abc-0123456789ab";
  m.create_time_ms = 1'767'225'600'123;  // 2026-01-01T00:00:00.123Z
  m.channel = "chat:room-42";
  m.event = "message";
  m.payload = std::move(payload);
  return m;
}

// ---- replies ----

TEST(encode_result, with_a_numeric_request_id) {
  const std::string out = encode_result("123", R"({"success":true})");
  EXPECT_EQ(out, R"({"requestId":123,"result":{"success":true}})");
  EXPECT_EQ(parse(out), parse(R"({"requestId":123,"result":{"success":true}})"));
}

TEST(encode_result, with_a_string_request_id) {
  const std::string out = encode_result(R"("a-1")", R"({"timestamp":"2026-01-01T00:00:00.000Z"})");
  const auto v = parse(out);
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.at("requestId"), json::value("a-1"));
  EXPECT_EQ(v.at("result").at("timestamp"), json::value("2026-01-01T00:00:00.000Z"));
  EXPECT_EQ(v.as_object().size(), 2u);
}

TEST(encode_result, without_request_id_has_only_result) {
  const auto v = parse(encode_result("", R"({"success":true})"));
  ASSERT_TRUE(v.is_object());
  EXPECT_FALSE(v.as_object().contains("requestId"));
  EXPECT_EQ(v.as_object().size(), 1u);
  EXPECT_EQ(v.at("result"), parse(R"({"success":true})"));
}

TEST(encode_error, with_request_id_has_the_error_object) {
  const auto v = parse(encode_error("7", error_code::permission_denied, "channel not in authorizedChannels"));
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.as_object().size(), 2u);
  EXPECT_EQ(v.at("requestId"), json::value(7));
  EXPECT_FALSE(v.as_object().contains("result"));
  const auto& err = v.at("error").as_object();
  EXPECT_EQ(err.size(), 2u);
  EXPECT_EQ(err.at("code"), json::value("PermissionDenied"));
  EXPECT_EQ(err.at("message"), json::value("channel not in authorizedChannels"));
}

TEST(encode_error, without_request_id) {
  const auto v = parse(encode_error("", error_code::invalid_argument, "malformed JSON"));
  ASSERT_TRUE(v.is_object());
  EXPECT_FALSE(v.as_object().contains("requestId"));
  EXPECT_EQ(v.at("error").at("code"), json::value("InvalidArgument"));
  EXPECT_EQ(v.at("error").at("message"), json::value("malformed JSON"));
}

TEST(encode_error, message_is_escaped) {
  const std::string message = "bad \"x\" \\ \n\t\x01 end";
  const auto v = parse(encode_error(R"("id")", error_code::internal, message));
  EXPECT_EQ(v.at("error").at("message"), json::value(message));
}

TEST(encode_error, every_code_has_its_protocol_name) {
  const std::pair<error_code, const char*> table[] = {{error_code::invalid_argument, "InvalidArgument"},
                                                      {error_code::not_found, "NotFound"},
                                                      {error_code::already_exists, "AlreadyExists"},
                                                      {error_code::failed_precondition, "FailedPrecondition"},
                                                      {error_code::permission_denied, "PermissionDenied"},
                                                      {error_code::unauthenticated, "Unauthenticated"},
                                                      {error_code::internal, "Internal"},
                                                      {error_code::resource_exhausted, "ResourceExhausted"},
                                                      {error_code::unavailable, "Unavailable"}};
  for (const auto& [code, name] : table) {
    EXPECT_EQ(parse(encode_error("1", code, "m")).at("error").at("code"), json::value(name));
    EXPECT_EQ(parse(encode_error_body(code, "m")).at("error").at("code"), json::value(name));
  }
}

TEST(encode_error_body, is_the_rest_error_object) {
  const auto v = parse(encode_error_body(error_code::unauthenticated, "missing \"key\""));
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.as_object().size(), 1u);
  EXPECT_EQ(v.at("error").at("code"), json::value("Unauthenticated"));
  EXPECT_EQ(v.at("error").at("message"), json::value("missing \"key\""));
}

TEST(encode_publish_result, has_id_and_create_time) {
  const auto v = parse(encode_publish_result(sample_message("1")));
  EXPECT_EQ(
      v, parse(R"({"id":"019b76da-a87b-7123-8abc-0123456789ab","createTime":"2026-01-01T00:00:00.123Z"})"));
}

// ---- same_json (the test helper) ----

TEST(same_json_helper, compares_numbers_by_value) {
  EXPECT_TRUE(same_json(parse("2"), parse("2.0")));
  EXPECT_TRUE(same_json(parse("[0]"), parse("[-0.0]")));
  EXPECT_FALSE(same_json(parse("2"), parse("2.5")));
  EXPECT_FALSE(same_json(parse(R"({"a":1})"), parse(R"({"b":1})")));
  EXPECT_FALSE(same_json(parse("[1,2]"), parse("[1]")));
  EXPECT_FALSE(same_json(parse("\"1\""), parse("1")));
}

// ---- json_quote ----

TEST(json_quote, plain_text_is_just_quoted) {
  EXPECT_EQ(json_quote("hello"), R"("hello")");
  EXPECT_EQ(json_quote(""), R"("")");
}

TEST(json_quote, escapes_quotes_and_backslashes) {
  EXPECT_EQ(json_quote(R"(a"b)"), R"("a\"b")");
  EXPECT_EQ(json_quote(R"(a\b)"), R"("a\\b")");
  EXPECT_EQ(json_quote(R"(\")"), R"("\\\"")");
}

TEST(json_quote, escapes_every_control_character) {
  for (int c = 0; c < 0x20; ++c) {
    const std::string raw = std::string("x") + static_cast<char>(c) + "y";
    const std::string quoted = json_quote(raw);
    for (char q : quoted)
      EXPECT_GE(static_cast<unsigned char>(q), 0x20) << "control char " << c << " left raw";
    EXPECT_EQ(parse(quoted), json::value(raw)) << "control char " << c;
  }
  EXPECT_EQ(json_quote("\n"), R"("\n")");
  EXPECT_EQ(json_quote("\t"), R"("\t")");
  EXPECT_EQ(json_quote(std::string_view("\0", 1)), R"("\u0000")");
}

TEST(json_quote, round_trips_unicode_and_del) {
  const std::string raw = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f /";
  EXPECT_EQ(parse(json_quote(raw)), json::value(raw));
}

// ---- encode_publication ----

json::value broadcast_frame(const core::publication& pub, std::uint64_t seq) {
  return parse(pub.head + std::to_string(seq) + pub.tail);
}

json::value expected_broadcast(const core::message& m, std::uint64_t seq, const json::value& payload) {
  json::object params;
  params["id"] = m.id;
  params["seq"] = seq;
  params["createTime"] = "2026-01-01T00:00:00.123Z";
  params["channel"] = m.channel;
  params["event"] = m.event;
  params["payload"] = payload;
  return json::object{{"method", "broadcast"}, {"params", std::move(params)}};
}

TEST(encode_publication, head_seq_tail_is_the_broadcast_notification) {
  const std::string payload = R"({"text":"hi \"there\"","n":[1,2.5,null,true],"o":{}})";
  const auto msg = sample_message(payload);
  const auto pub = encode_publication(msg);
  ASSERT_NE(pub, nullptr);
  EXPECT_EQ(broadcast_frame(*pub, 7), expected_broadcast(msg, 7, parse(payload)));
  // The same pieces serve any seq.
  EXPECT_EQ(broadcast_frame(*pub, 1), expected_broadcast(msg, 1, parse(payload)));
  EXPECT_EQ(broadcast_frame(*pub, 18446744073709551615u),
            expected_broadcast(msg, 18446744073709551615u, parse(payload)));
}

TEST(encode_publication, payload_of_any_json_type_arrives_as_the_same_value) {
  for (const char* payload : {"null", "true", "false", "0", "-1.25e3", R"("text")", R"("")", "[]", "{}",
                              R"([{"a":[{"b":"\u00e9"}]}])", "18446744073709551615"}) {
    const auto msg = sample_message(payload);
    const auto v = broadcast_frame(*encode_publication(msg), 3);
    EXPECT_EQ(v.at("params").at("payload"), parse(payload)) << payload;
    EXPECT_EQ(v, expected_broadcast(msg, 3, parse(payload))) << payload;
  }
}

TEST(encode_publication, payload_bytes_are_copied_verbatim) {
  // The payload is the publisher's source text (raw_json): whatever a double would make of it, and whatever
  // whitespace or escapes it holds, the frame carries the same bytes.
  for (const char* payload :
       {"18446744073709551617", "123456789012345678901234567890", "1e-400", "1e400", "-0", "0.10", "1E+2",
        R"("\u00e9\n")", R"("\/")", "{ \"a\" : [ 1 ,\n 2 ] }", R"({"k":1,"k":2})"}) {
    const auto pub = encode_publication(sample_message(payload));
    const std::string frame = pub->head + "5" + pub->tail;
    const std::string marker = ",\"payload\":";
    const auto at = frame.rfind(marker);
    ASSERT_NE(at, std::string::npos) << frame;
    EXPECT_EQ(frame.substr(at + marker.size()), std::string(payload) + "}}") << frame;
  }
}

TEST(encode_publication, payload_bytes_survive_the_redis_envelope) {
  // A message crossing nodes is re-encoded from the envelope on the receiving node: the same bytes arrive.
  for (const char* payload :
       {"18446744073709551617", "1e400", "-0", "0.10", R"("\u00e9\n\/")", "{ \"a\" : [ 1 ,\n 2 ] }"}) {
    const auto msg = sample_message(payload);
    core::message across;
    ASSERT_TRUE(broker::decode_envelope(broker::encode_envelope(msg), across)) << payload;
    EXPECT_EQ(across.payload, payload);
    EXPECT_EQ(encode_publication(across)->tail, encode_publication(msg)->tail) << payload;
  }
}

TEST(encode_publication, event_is_escaped) {
  auto msg = sample_message("1");
  msg.event = "say \"hi\"\\\n\x02";
  const auto v = broadcast_frame(*encode_publication(msg), 2);
  EXPECT_EQ(v.at("params").at("event"), json::value(msg.event));
}

TEST(encode_publication, keeps_only_the_channel_besides_the_bytes) {
  const auto msg = sample_message(R"({"a":1})");
  const auto pub = encode_publication(msg);
  EXPECT_EQ(pub->channel, msg.channel);  // the hubs route by it; the payload is stored once, in the tail
  EXPECT_NE(pub->tail.find(msg.payload), std::string::npos);
}

TEST(encode_publication, head_fits_the_outbound_queue_inline_buffer) {
  const auto pub = encode_publication(sample_message("1"));
  // net::outbound_queue copies the WebSocket header (<= 10 bytes), the head and up to 20 seq digits into its
  // 80-byte inline buffer (the net layer's test checks the same against the constant itself).
  EXPECT_LE(pub->head.size(), 80u - 10u - 20u);
  // The head does not depend on the message.
  auto other = sample_message(std::string(100'000, ' ') + "1");
  other.channel = std::string(255, 'c');
  other.event = std::string(255, '"');
  EXPECT_EQ(encode_publication(other)->head, pub->head);
}

TEST(encode_publication, long_fields_still_parse) {
  auto msg = sample_message("\"" + std::string(70'000, 'p') + "\"");
  msg.channel = std::string(255, 'c');
  msg.event = std::string(255, 'e');
  const auto v = broadcast_frame(*encode_publication(msg), 99);
  EXPECT_EQ(v, expected_broadcast(msg, 99, json::value(std::string(70'000, 'p'))));
}

}  // namespace
}  // namespace bc::protocol
