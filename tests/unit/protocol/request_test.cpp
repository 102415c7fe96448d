#include "protocol/request.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "protocol/error_code.hpp"

namespace bc::protocol {
namespace {

namespace json = boost::json;

request must_parse(std::string_view text) {
  auto r = parse_request(text);
  EXPECT_TRUE(r.req.has_value()) << text << " -> " << r.message;
  return r.req ? std::move(*r.req) : request{};
}

// The JSON value that id_json denotes (id_json must itself be valid JSON text).
json::value id_value(const std::string& id_json) {
  return json::parse(id_json);
}

// ---- methods ----

TEST(parse_request, every_method_name_maps_to_its_verb) {
  EXPECT_EQ(must_parse(R"({"method":"auth","params":{"token":"t"}})").verb, method::auth);
  EXPECT_EQ(must_parse(R"({"method":"subscribe","params":{"channel":"c"}})").verb, method::subscribe);
  EXPECT_EQ(must_parse(R"({"method":"unsubscribe","params":{"channel":"c"}})").verb, method::unsubscribe);
  EXPECT_EQ(must_parse(R"({"method":"publish","params":{}})").verb, method::publish);
  EXPECT_EQ(must_parse(R"({"method":"heartbeat"})").verb, method::heartbeat);
}

TEST(parse_method, round_trips_and_is_case_sensitive) {
  for (method m :
       {method::auth, method::subscribe, method::unsubscribe, method::publish, method::heartbeat}) {
    ASSERT_TRUE(parse_method(to_string(m)).has_value());
    EXPECT_EQ(*parse_method(to_string(m)), m);
  }
  EXPECT_FALSE(parse_method("Subscribe").has_value());
  EXPECT_FALSE(parse_method("subscribe ").has_value());
  EXPECT_FALSE(parse_method("").has_value());
  EXPECT_FALSE(parse_method("broadcast").has_value());
}

TEST(parse_request, unknown_method_is_not_found_and_keeps_the_id) {
  auto r = parse_request(R"({"id":9,"method":"frobnicate"})");
  EXPECT_FALSE(r.req.has_value());
  EXPECT_EQ(r.code, error_code::not_found);
  EXPECT_EQ(r.message, "unknown method");
  EXPECT_EQ(r.id_json, "9");
}

TEST(parse_request, method_name_with_embedded_nul_is_unknown) {
  auto r = parse_request("{\"method\":\"heartbeat\\u0000\"}");
  EXPECT_FALSE(r.req.has_value());
  EXPECT_EQ(r.code, error_code::not_found);
}

TEST(parse_request, missing_method_is_invalid_argument_with_the_id) {
  auto r = parse_request(R"({"id":"abc","params":{}})");
  EXPECT_FALSE(r.req.has_value());
  EXPECT_EQ(r.code, error_code::invalid_argument);
  EXPECT_EQ(r.message, "missing method");
  EXPECT_EQ(r.id_json, R"("abc")");
}

TEST(parse_request, non_string_method_is_invalid_argument) {
  for (const char* text :
       {R"({"id":1,"method":5})", R"({"id":1,"method":null})", R"({"id":1,"method":["auth"]})",
        R"({"id":1,"method":{"name":"auth"}})", R"({"id":1,"method":true})"}) {
    auto r = parse_request(text);
    EXPECT_FALSE(r.req.has_value()) << text;
    EXPECT_EQ(r.code, error_code::invalid_argument) << text;
    EXPECT_EQ(r.message, "method must be a string") << text;
    EXPECT_EQ(r.id_json, "1") << text;
  }
}

// ---- ids ----

TEST(parse_request, numeric_id_is_echoed) {
  EXPECT_EQ(must_parse(R"({"id":123,"method":"heartbeat"})").id_json, "123");
  EXPECT_EQ(must_parse(R"({"id":-7,"method":"heartbeat"})").id_json, "-7");
  EXPECT_EQ(must_parse(R"({"id":18446744073709551615,"method":"heartbeat"})").id_json,
            "18446744073709551615");
  EXPECT_EQ(must_parse(R"({"id":-9223372036854775808,"method":"heartbeat"})").id_json,
            "-9223372036854775808");
}

TEST(parse_request, fractional_id_is_echoed_as_the_same_number) {
  const auto r = must_parse(R"({"id":1.5,"method":"heartbeat"})");
  ASSERT_FALSE(r.id_json.empty());
  EXPECT_EQ(id_value(r.id_json), json::value(1.5));
  for (const char* id : {"1.5", "-0.25", "0.1", "123.456", "1e+300"}) {
    EXPECT_EQ(must_parse(R"({"id":)" + std::string(id) + R"(,"method":"heartbeat"})").id_json, id);
  }
}

TEST(parse_request, numeric_id_is_echoed_exactly_as_written) {
  // PROTOCOL: ids are echoed back unchanged. Not the shortest form of a double, not a rounded integer: the
  // client's own text, whatever its magnitude or spelling.
  for (const char* id : {"1e2", "1E+2", "0.10", "1.50", "12345678901234567890123", "18446744073709551617",
                         "-18446744073709551617", "123456789012345678901234567890", "1e-400", "-1e-400",
                         "1e400", "-1E999", "5e-324", "2.0"}) {
    EXPECT_EQ(must_parse(R"({"id":)" + std::string(id) + R"(,"method":"heartbeat"})").id_json, id);
  }
}

TEST(parse_request, id_beyond_double_range_is_echoed_as_written) {
  // Boost.JSON parses 1e400 as a double infinity, which no serializer can write as JSON; the echo is the
  // client's text, valid JSON by construction.
  for (const char* id : {"1e400", "-1e400"}) {
    const auto r = parse_request(R"({"id":)" + std::string(id) + R"(,"method":"heartbeat"})");
    ASSERT_TRUE(r.req.has_value()) << id;
    EXPECT_EQ(r.req->id_json, id);
  }
}

TEST(parse_request, string_id_is_echoed_as_sent) {
  EXPECT_EQ(must_parse(R"({"id":"abc","method":"heartbeat"})").id_json, R"("abc")");
  // Escapes are kept as the client wrote them, not re-encoded.
  EXPECT_EQ(must_parse(R"({"id":"a\"b\\c\n\u00e9","method":"heartbeat"})").id_json, R"("a\"b\\c\n\u00e9")");
  EXPECT_EQ(must_parse(R"({"id":"\/\u0041\ud83d\ude00","method":"heartbeat"})").id_json,
            R"("\/\u0041\ud83d\ude00")");
  EXPECT_EQ(must_parse("{\"id\":\"caf\xc3\xa9\",\"method\":\"heartbeat\"}").id_json, "\"caf\xc3\xa9\"");
  // "0" and "" are strings, not the number 0: they are real ids.
  EXPECT_EQ(must_parse(R"({"id":"0","method":"heartbeat"})").id_json, R"("0")");
  EXPECT_EQ(must_parse(R"({"id":"","method":"heartbeat"})").id_json, R"("")");
}

TEST(parse_request, id_text_excludes_surrounding_whitespace) {
  EXPECT_EQ(must_parse("{ \"id\" :\n 1e2 \t, \"method\":\"heartbeat\"}").id_json, "1e2");
  EXPECT_EQ(must_parse("{\"method\":\"heartbeat\", \"id\":\r\"x\"\n}").id_json, R"("x")");
}

TEST(parse_request, duplicate_or_escaped_id_keys_follow_the_dom) {
  // Boost.JSON keeps the last of duplicate keys; the echoed text is that member's.
  EXPECT_EQ(must_parse(R"({"id":1,"method":"heartbeat","id":"two"})").id_json, R"("two")");
  EXPECT_EQ(must_parse(R"({"i\u0064":7,"method":"heartbeat"})").id_json, "7");
  EXPECT_EQ(must_parse(R"({"id":7,"method":"heartbeat","\u0069d":8e0})").id_json, "8e0");
  EXPECT_EQ(must_parse(R"({"id":5,"method":"heartbeat","id":0})").id_json, "") << "the last id is 0";
  EXPECT_EQ(must_parse(R"({"id":0,"method":"heartbeat","id":5})").id_json, "5");
  const auto bad = parse_request(R"({"id":5,"method":"heartbeat","id":true})");
  EXPECT_FALSE(bad.req.has_value());
  EXPECT_EQ(bad.message, "id must be a number or a string");
}

TEST(parse_request, zero_null_or_absent_id_is_a_notification) {
  // Zero is judged by value, on the text: every digit of the mantissa is 0, whatever the sign and exponent.
  for (const char* text :
       {R"({"method":"heartbeat"})", R"({"id":null,"method":"heartbeat"})",
        R"({"id":0,"method":"heartbeat"})", R"({"id":-0,"method":"heartbeat"})",
        R"({"id":0.0,"method":"heartbeat"})", R"({"id":0e5,"method":"heartbeat"})",
        R"({"id":-0.000E-7,"method":"heartbeat"})", R"({"id":0E+400,"method":"heartbeat"})"}) {
    const auto r = parse_request(text);
    ASSERT_TRUE(r.req.has_value()) << text;
    EXPECT_EQ(r.req->id_json, "") << text;
    EXPECT_EQ(r.id_json, "") << text;
  }
}

TEST(parse_request, tiny_id_is_not_zero) {
  // A double reads 1e-400 as 0.0, but the client's number is not zero: it is a real id, echoed as written.
  EXPECT_EQ(must_parse(R"({"id":1e-400,"method":"heartbeat"})").id_json, "1e-400");
  EXPECT_EQ(must_parse(R"({"id":0.0001,"method":"heartbeat"})").id_json, "0.0001");
}

TEST(parse_request, id_of_a_bad_type_is_invalid_argument_without_request_id) {
  for (const char* text : {R"({"id":true,"method":"heartbeat"})", R"({"id":false,"method":"heartbeat"})",
                           R"({"id":[1],"method":"heartbeat"})", R"({"id":{"n":1},"method":"heartbeat"})"}) {
    const auto r = parse_request(text);
    EXPECT_FALSE(r.req.has_value()) << text;
    EXPECT_EQ(r.code, error_code::invalid_argument) << text;
    EXPECT_EQ(r.message, "id must be a number or a string") << text;
    EXPECT_EQ(r.id_json, "") << text;
  }
}

TEST(parse_request, id_is_known_when_params_are_bad) {
  const auto r = parse_request(R"({"id":42,"method":"subscribe","params":[1,2]})");
  EXPECT_FALSE(r.req.has_value());
  EXPECT_EQ(r.id_json, "42");
}

// ---- params ----

TEST(parse_request, absent_or_null_params_are_empty) {
  EXPECT_TRUE(must_parse(R"({"method":"heartbeat"})").params.empty());
  EXPECT_TRUE(must_parse(R"({"id":1,"method":"heartbeat","params":null})").params.empty());
  EXPECT_TRUE(must_parse(R"({"id":1,"method":"heartbeat","params":{}})").params.empty());
}

TEST(parse_request, publish_carries_the_payload_source_text) {
  const auto r = must_parse(
      "{\"id\":1,\"method\":\"publish\",\"params\":{\"channel\":\"news\",\"event\":\"e\",\"payload\" : "
      "{ \"big\" : 18446744073709551617,\n \"tiny\": 1e-400, \"s\":\"\\u00e9\\/\" } }}");
  EXPECT_EQ(r.payload_json, "{ \"big\" : 18446744073709551617,\n \"tiny\": 1e-400, \"s\":\"\\u00e9\\/\" }");
  for (const char* payload : {"123456789012345678901234567890", "1e400", "-0", "0.10", "1E+2", "null",
                              R"("\u00e9\n")", "[1 , 2]"}) {
    const std::string text =
        std::string(R"({"id":1,"method":"publish","params":{"channel":"news","event":"e","payload":)") +
        payload + "}}";
    EXPECT_EQ(must_parse(text).payload_json, payload) << text;
  }
}

TEST(parse_request, payload_text_is_the_member_the_dom_keeps) {
  // Duplicate keys, at either level, and escaped spellings of them: the text is always that of the member
  // Boost.JSON kept in params, so what was validated is what is delivered.
  struct row {
    const char* text;
    const char* payload;
  };
  for (const row& c : {
           row{R"({"method":"publish","params":{"payload":1,"payload":2}})", "2"},
           row{R"({"method":"publish","params":{"pay\u006coad":[1],"x":0}})", "[1]"},
           row{R"({"method":"publish","params":{"payload":1,"pay\u006coad":{"a":2}}})", R"({"a":2})"},
           row{R"({"method":"publish","params":{"payload":1},"params":{"payload":"b"}})", R"("b")"},
           row{R"({"method":"publish","params":{"payload":1},"p\u0061rams":{"payload":3}})", "3"},
           row{R"({"method":"publish","params":{"payload":1},"params":null})", ""},
       }) {
    const auto r = must_parse(c.text);
    EXPECT_EQ(r.payload_json, c.payload) << c.text;
    if (!r.payload_json.empty()) {
      EXPECT_EQ(json::parse(r.payload_json), r.params.at("payload")) << c.text;
    }
  }
}

TEST(parse_request, only_publish_carries_payload_text) {
  EXPECT_EQ(must_parse(R"({"method":"subscribe","params":{"channel":"c","payload":1}})").payload_json, "");
  EXPECT_EQ(must_parse(R"({"method":"publish","params":{"channel":"c"}})").payload_json, "");
  EXPECT_EQ(must_parse(R"({"method":"publish"})").payload_json, "");
}

TEST(parse_request, object_params_are_kept) {
  const auto r = must_parse(
      R"({"id":1,"method":"publish","params":{"channel":"news","event":"e","payload":{"a":[1,2]}}})");
  EXPECT_EQ(r.params.size(), 3u);
  EXPECT_EQ(r.params.at("channel"), json::value("news"));
  EXPECT_EQ(r.params.at("payload"), json::parse(R"({"a":[1,2]})"));
}

TEST(parse_request, non_object_params_are_invalid_argument) {
  for (const char* params : {"[]", "[1]", "\"x\"", "5", "true", "false"}) {
    const std::string text = std::string(R"({"id":3,"method":"subscribe","params":)") + params + "}";
    const auto r = parse_request(text);
    EXPECT_FALSE(r.req.has_value()) << text;
    EXPECT_EQ(r.code, error_code::invalid_argument) << text;
    EXPECT_EQ(r.message, "params must be an object") << text;
    EXPECT_EQ(r.id_json, "3") << text;
  }
}

TEST(parse_request, unknown_fields_are_ignored) {
  const auto r = must_parse(
      R"({"id":5,"method":"subscribe","jsonrpc":"2.0","extra":{"x":[1]},"params":{"channel":"news","lastSeenMessageId":"m-1"}})");
  EXPECT_EQ(r.verb, method::subscribe);
  EXPECT_EQ(r.id_json, "5");
  EXPECT_EQ(r.params.at("channel"), json::value("news"));
}

TEST(parse_request, field_order_does_not_matter) {
  const auto r = must_parse(R"({"params":{"channel":"news"},"method":"subscribe","id":8})");
  EXPECT_EQ(r.verb, method::subscribe);
  EXPECT_EQ(r.id_json, "8");
}

// ---- malformed documents ----

TEST(parse_request, malformed_json_is_invalid_argument) {
  for (const char* text :
       {"", " ", "{", "}", R"({"method":"heartbeat")", R"({"method":"heartbeat"}})",
        R"({"method":"heartbeat"} x)", R"({"method":"heartbeat"}{})", R"({method:"heartbeat"})",
        R"({'method':'heartbeat'})", R"({"method":"heartbeat",})", "nul", "{\"method\":\"he\n\"}",
        R"({"id":01,"method":"heartbeat"})", R"({"method":"heartbeat"/*c*/})"}) {
    const auto r = parse_request(text);
    EXPECT_FALSE(r.req.has_value()) << text;
    EXPECT_EQ(r.code, error_code::invalid_argument) << text;
    EXPECT_EQ(r.message.rfind("malformed JSON", 0), 0u) << text << " -> " << r.message;
    EXPECT_EQ(r.id_json, "") << text;
  }
}

TEST(parse_request, invalid_utf8_is_refused) {
  const auto r = parse_request("{\"method\":\"heartbeat\",\"x\":\"\xff\xfe\"}");
  EXPECT_FALSE(r.req.has_value());
  EXPECT_EQ(r.code, error_code::invalid_argument);
}

TEST(parse_request, whitespace_around_the_document_is_fine) {
  EXPECT_EQ(must_parse(" \n\t{\"id\":1,\"method\":\"heartbeat\"}\r\n ").id_json, "1");
}

TEST(parse_request, non_object_request_is_invalid_argument) {
  for (const char* text : {"[]", R"([{"method":"heartbeat"}])", "null", "42", "\"heartbeat\"", "true"}) {
    const auto r = parse_request(text);
    EXPECT_FALSE(r.req.has_value()) << text;
    EXPECT_EQ(r.code, error_code::invalid_argument) << text;
    EXPECT_EQ(r.message, "request must be a JSON object") << text;
  }
}

std::string nested_arrays(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') +
         std::string(static_cast<std::size_t>(depth), ']');
}

TEST(parse_request, deep_nesting_is_refused) {
  const std::string text = R"({"id":1,"method":"publish","params":{"payload":)" + nested_arrays(100) + "}}";
  const auto r = parse_request(text);
  EXPECT_FALSE(r.req.has_value());
  EXPECT_EQ(r.code, error_code::invalid_argument);
  EXPECT_NE(r.message.find("nested too deeply"), std::string::npos) << r.message;
}

TEST(parse_request, very_deep_nesting_does_not_recurse_without_bound) {
  // A 1 MB document of brackets: must fail fast with the depth error, not overflow the stack.
  const std::string text = std::string(1'000'000, '[');
  const auto r = parse_request(text);
  EXPECT_FALSE(r.req.has_value());
  EXPECT_NE(r.message.find("nested too deeply"), std::string::npos) << r.message;
}

TEST(parse_request, nesting_up_to_the_limit_is_accepted) {
  // The request object is level 1, params level 2, payload's arrays levels 3..max_json_depth.
  const int arrays = static_cast<int>(max_json_depth) - 2;
  const std::string ok = R"({"id":1,"method":"publish","params":{"payload":)" + nested_arrays(arrays) + "}}";
  EXPECT_TRUE(parse_request(ok).req.has_value()) << parse_request(ok).message;
  const std::string too_deep =
      R"({"id":1,"method":"publish","params":{"payload":)" + nested_arrays(arrays + 1) + "}}";
  const auto r = parse_request(too_deep);
  EXPECT_FALSE(r.req.has_value());
  EXPECT_NE(r.message.find("nested too deeply"), std::string::npos) << r.message;
}

// ---- parse_json ----

TEST(parse_json, parses_any_value_and_reports_errors) {
  std::string message;
  auto v = parse_json(R"([1,"a",null])", message);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, json::parse(R"([1,"a",null])"));
  EXPECT_FALSE(parse_json("[1,", message).has_value());
  EXPECT_EQ(message.rfind("malformed JSON", 0), 0u);
  message.clear();
  EXPECT_FALSE(parse_json(nested_arrays(100), message).has_value());
  EXPECT_EQ(message, "JSON nested too deeply");
}

// ---- string_param ----

TEST(string_param, returns_the_string) {
  const auto params = json::parse(R"({"channel":"news","empty":"","n":5})").as_object();
  std::string message;
  auto v = string_param(params, "channel", message);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, "news");
  EXPECT_TRUE(message.empty());
  auto e = string_param(params, "empty", message);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(*e, "");
}

TEST(string_param, keeps_embedded_nul_and_unicode) {
  const auto params = json::parse("{\"t\":\"a\\u0000b\\u00e9\"}").as_object();
  std::string message;
  auto v = string_param(params, "t", message);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, std::string_view("a\0b\xc3\xa9", 5));
}

TEST(string_param, missing_key_is_reported_as_required) {
  const json::object params;
  std::string message;
  EXPECT_FALSE(string_param(params, "token", message).has_value());
  EXPECT_EQ(message, "token is required");
}

TEST(string_param, wrong_type_is_reported) {
  const auto params = json::parse(R"({"a":5,"b":null,"c":[],"d":{},"e":true,"f":1.5})").as_object();
  for (const char* key : {"a", "b", "c", "d", "e", "f"}) {
    std::string message;
    EXPECT_FALSE(string_param(params, key, message).has_value()) << key;
    EXPECT_EQ(message, std::string(key) + " must be a string");
  }
}

}  // namespace
}  // namespace bc::protocol
