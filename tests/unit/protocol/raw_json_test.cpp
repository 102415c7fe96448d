#include "protocol/raw_json.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <string_view>

namespace bc::protocol::raw_json {
namespace {

namespace json = boost::json;

// The member Boost.JSON's DOM holds for `key`, or null when there is none: what find_member must agree with.
json::value dom_member(std::string_view text, std::string_view key) {
  const json::value doc = json::parse(text);
  const auto* v = doc.as_object().if_contains(key);
  return v ? *v : json::value(nullptr);
}

// find_member's span, checked to be the DOM's member.
std::string member(std::string_view text, std::string_view key) {
  const std::string_view span = find_member(text, key);
  if (!span.empty()) {
    EXPECT_EQ(json::parse(span), dom_member(text, key)) << text << " [" << key << "] -> " << span;
  }
  return std::string(span);
}

// ---- find_member ----

TEST(find_member, gives_the_source_text_of_each_kind_of_value) {
  const std::string text =
      R"({"s":"a\"b\\","n":-1.50e+3,"t":true,"f":false,"z":null,"a":[1,"]",{"x":"}"}],"o":{"k":[{}]},"e":""})";
  EXPECT_EQ(member(text, "s"), R"("a\"b\\")");
  EXPECT_EQ(member(text, "n"), "-1.50e+3");
  EXPECT_EQ(member(text, "t"), "true");
  EXPECT_EQ(member(text, "f"), "false");
  EXPECT_EQ(member(text, "z"), "null");
  EXPECT_EQ(member(text, "a"), R"([1,"]",{"x":"}"}])");
  EXPECT_EQ(member(text, "o"), R"({"k":[{}]})");
  EXPECT_EQ(member(text, "e"), R"("")");
}

TEST(find_member, keeps_numbers_a_double_cannot_hold) {
  for (const char* n : {"18446744073709551617", "123456789012345678901234567890", "1e-400", "1e400", "-0",
                        "0.10", "1E+2", "-1e-999"}) {
    const std::string text = std::string(R"({"payload":)") + n + "}";
    EXPECT_EQ(find_member(text, "payload"), n);
  }
}

TEST(find_member, excludes_whitespace_around_the_value_and_keeps_it_inside) {
  const std::string text = " \n{ \"payload\" \t:\r\n { \"a\" : [ 1 ,\n 2 ] }\n , \"b\" : 1 \n}\t";
  EXPECT_EQ(member(text, "payload"), "{ \"a\" : [ 1 ,\n 2 ] }");
  EXPECT_EQ(member(text, "b"), "1");
  EXPECT_EQ(member("{\"x\" : 7 }", "x"), "7");
  EXPECT_EQ(member("{\"x\":7}", "x"), "7");
}

TEST(find_member, strings_keep_their_escapes) {
  EXPECT_EQ(member(R"({"p":"\u00e9\n"})", "p"), R"("\u00e9\n")");
  EXPECT_EQ(member(R"({"p":"\/"})", "p"), R"("\/")");
  EXPECT_EQ(member(R"({"p":"\\","q":1})", "q"), "1");
  EXPECT_EQ(member(R"({"p":"\\\"}","q":"{["})", "q"), R"("{[")");
}

TEST(find_member, absent_members_and_non_objects_give_nothing) {
  EXPECT_EQ(find_member("{}", "payload"), "");
  EXPECT_EQ(find_member(" { } ", "payload"), "");
  EXPECT_EQ(find_member(R"({"payloads":1,"payloa":2,"Payload":3})", "payload"), "");
  EXPECT_EQ(find_member(R"({"a":{"payload":1}})", "payload"), "") << "only direct members count";
  EXPECT_EQ(find_member(R"(["payload",1])", "payload"), "");
  EXPECT_EQ(find_member(R"("payload")", "payload"), "");
  EXPECT_EQ(find_member("5", "payload"), "");
  EXPECT_EQ(find_member("", "payload"), "");
}

TEST(find_member, keys_are_compared_after_decoding_escapes) {
  EXPECT_EQ(member(R"({"pay\u006coad":[1]})", "payload"), "[1]");
  EXPECT_EQ(member(R"({"\u0070\u0061\u0079\u006C\u006F\u0061\u0064":2})", "payload"), "2");
  EXPECT_EQ(member(R"({"a\"b":3})", "a\"b"), "3");
  EXPECT_EQ(member(R"({"a\\b":4})", "a\\b"), "4");
  EXPECT_EQ(member(R"({"\/":5})", "/"), "5");
  EXPECT_EQ(member(R"({"\b\f\n\r\t":6})", "\b\f\n\r\t"), "6");
  EXPECT_EQ(member(R"({"caf\u00e9":7})", "caf\xc3\xa9"), "7");
  EXPECT_EQ(member("{\"caf\xc3\xa9\":8}", "caf\xc3\xa9"), "8");
  EXPECT_EQ(member(R"({"\u20ac":9})", "\xe2\x82\xac"), "9");
  EXPECT_EQ(member(R"({"\ud83d\ude00":10})", "\xf0\x9f\x98\x80"), "10");
  EXPECT_EQ(member(R"({"a\u0000b":11})", std::string_view("a\0b", 3)), "11");
  EXPECT_EQ(find_member(R"({"payload\u0000":1})", "payload"), "");
  EXPECT_EQ(find_member(R"({"pay\u006coads":1})", "payload"), "");
  EXPECT_EQ(find_member(R"({"pay\u006c":1})", "payload"), "");
}

TEST(find_member, boost_json_keeps_the_last_of_duplicate_keys) {
  // The assumption find_member rests on (Boost 1.81, object.ipp). Should a Boost upgrade change it, this test
  // says so before a validated payload and a delivered one can differ.
  EXPECT_EQ(json::parse(R"({"a":1,"a":2})").at("a"), json::value(2));
  EXPECT_EQ(json::parse(R"({"a":1,"b":0,"a":[2]})").at("a"), json::parse("[2]"));
  // Past the small-table size, where the DOM switches to buckets.
  std::string many = "{\"a\":1";
  for (int i = 0; i < 40; ++i) many += ",\"k" + std::to_string(i) + "\":" + std::to_string(i);
  many += ",\"a\":2}";
  EXPECT_EQ(json::parse(many).at("a"), json::value(2));
  EXPECT_EQ(member(many, "a"), "2");
}

TEST(find_member, duplicate_keys_resolve_to_the_member_the_dom_keeps) {
  EXPECT_EQ(member(R"({"payload":1,"payload":"second"})", "payload"), R"("second")");
  EXPECT_EQ(member(R"({"payload":1,"x":0,"pay\u006coad":{"b":2}})", "payload"), R"({"b":2})");
  EXPECT_EQ(member(R"({"pay\u006coad":1,"payload":[3]})", "payload"), "[3]");
  EXPECT_EQ(member(R"({"id":1,"id":"two","id":3e0})", "id"), "3e0");
}

TEST(find_member, nesting_is_skipped_without_recursion) {
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  const std::string text = R"({"a":)" + deep + R"(,"b":{"c":)" + deep + R"(},"payload":true})";
  EXPECT_EQ(find_member(text, "payload"), "true");
  EXPECT_EQ(find_member(text, "a"), deep);
}

TEST(find_member, stays_inside_text_that_is_not_json) {
  // Not a supported use, but nothing may be read past the end (ASan) and nothing may loop.
  for (const char* text : {"{", "{\"", "{\"a", "{\"a\"", "{\"a\":", "{\"a\":\"", "{\"a\":[", "{\"a\":{\"b\"",
                           "{\"a\\", "{\"a\\u00", "{\"a\\u", "{\"a\":1,", "{\"a\":1 x", "{:1}", "{\"a\":]",
                           "{\"a\":}", "{\"a\":1}}}", "]]]]"}) {
    (void)find_member(text, "a");
    (void)find_member(text, "b");
  }
  EXPECT_EQ(find_member("{\"a\":[1,2", "a"), "[1,2");
}

// ---- find_members ----

TEST(find_members, finds_several_keys_in_one_pass) {
  const std::string text = R"({"params":{"payload":1},"method":"publish","id":"x","id":7})";
  constexpr std::string_view keys[] = {"id", "params", "absent"};
  std::string_view values[3] = {"stale", "stale", "stale"};
  find_members(text, keys, values);
  EXPECT_EQ(values[0], "7");
  EXPECT_EQ(values[1], R"({"payload":1})");
  EXPECT_EQ(values[2], "") << "absent keys are cleared";
}

// ---- key_equals ----

TEST(key_equals, compares_decoded_keys) {
  EXPECT_TRUE(key_equals("id", "id"));
  EXPECT_TRUE(key_equals("\\u0069d", "id"));
  EXPECT_TRUE(key_equals("", ""));
  EXPECT_FALSE(key_equals("", "id"));
  EXPECT_FALSE(key_equals("i", "id"));
  EXPECT_FALSE(key_equals("idd", "id"));
  EXPECT_FALSE(key_equals("\\u0069", "id"));
  EXPECT_FALSE(key_equals("\\u0069dd", "id"));
  EXPECT_FALSE(key_equals("\\u00e9", "e"));
  EXPECT_TRUE(key_equals("\\u00e9", "\xc3\xa9"));
  EXPECT_FALSE(key_equals("\\u00e9", "\xc3"));
  EXPECT_FALSE(key_equals("\\ud83d", "\xf0\x9f\x98\x80")) << "a lone surrogate matches nothing";
  EXPECT_FALSE(key_equals("\\ude00", "\xf0\x9f\x98\x80"));
  EXPECT_FALSE(key_equals("\\x", "x"));
  EXPECT_FALSE(key_equals("\\", "\\"));
}

// ---- is_zero ----

TEST(is_zero, every_spelling_of_zero) {
  for (const char* n : {"0", "-0", "0.0", "-0.0", "0e5", "0E-5", "-0.000E-7", "0.00e+400", "0e0"}) {
    EXPECT_TRUE(is_zero(n)) << n;
  }
}

TEST(is_zero, nonzero_numbers_however_small) {
  for (const char* n : {"1", "-1", "0.1", "0.0001", "1e-400", "-1e-999", "10e-5", "0.10", "9", "1e400"}) {
    EXPECT_FALSE(is_zero(n)) << n;
  }
  EXPECT_FALSE(is_zero("")) << "not a number";
  EXPECT_FALSE(is_zero("null"));
}

}  // namespace
}  // namespace bc::protocol::raw_json
