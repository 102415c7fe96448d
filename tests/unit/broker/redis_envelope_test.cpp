#include "broker/redis_envelope.hpp"

#include <gtest/gtest.h>

namespace bc::broker {
namespace {

core::message sample() {
  core::message m;
  m.id = "0192f1e2-7b3c-7def-8123-456789abcdef";
  m.create_time_ms = 1767225600123;
  m.channel = "chat:room-42";
  m.event = "msg \"quoted\" \xC3\xA9";
  m.payload = R"({"text":"hi","list":[1,2,3],"nested":{"a":null}})";
  return m;
}

TEST(redis_envelope, round_trips_every_field) {
  const auto m = sample();
  const auto bytes = encode_envelope(m);
  core::message out;
  ASSERT_TRUE(decode_envelope(bytes, out));
  EXPECT_EQ(out.id, m.id);
  EXPECT_EQ(out.create_time_ms, m.create_time_ms);
  EXPECT_EQ(out.channel, m.channel);
  EXPECT_EQ(out.event, m.event);
  EXPECT_EQ(out.payload, m.payload);
}

TEST(redis_envelope, is_compact) {
  const auto m = sample();
  const auto fields = m.id.size() + m.channel.size() + m.event.size() + m.payload.size();
  EXPECT_LE(encode_envelope(m).size(), fields + 2 + 6 + 3);  // magic, varint time, three 1-byte lengths
}

TEST(redis_envelope, keeps_binary_and_large_payloads_and_edge_times) {
  auto m = sample();
  m.payload = std::string(100000, 'x') + std::string("\0\xff", 2);
  for (std::int64_t t : {std::int64_t{0}, std::int64_t{-1}, INT64_MAX, INT64_MIN}) {
    m.create_time_ms = t;
    core::message out;
    ASSERT_TRUE(decode_envelope(encode_envelope(m), out));
    EXPECT_EQ(out.create_time_ms, t);
    EXPECT_EQ(out.payload, m.payload);
  }
  m.payload.clear();
  core::message out;
  ASSERT_TRUE(decode_envelope(encode_envelope(m), out));
  EXPECT_EQ(out.payload, "");
}

TEST(redis_envelope, rejects_what_it_cannot_read) {
  core::message out;
  EXPECT_FALSE(decode_envelope("", out));
  EXPECT_FALSE(decode_envelope("{\"json\":true}", out));
  EXPECT_FALSE(decode_envelope(std::string("\xBC\x03", 2), out)) << "unknown version";
  EXPECT_FALSE(decode_envelope(std::string("\xBC\x02", 2), out)) << "version 2 without its fields";
  const auto good = encode_envelope(sample());
  // Every strict prefix that cuts into the header fields is rejected (the payload is the open-ended rest).
  const auto header = good.size() - sample().payload.size();
  for (std::size_t n = 0; n < header; ++n) EXPECT_FALSE(decode_envelope(good.substr(0, n), out)) << n;
  // A length running past the end.
  std::string bad = good.substr(0, 2 + 6);
  bad += static_cast<char>(0x7F);
  bad += "short";
  EXPECT_FALSE(decode_envelope(bad, out));
  // An over-long varint.
  EXPECT_FALSE(decode_envelope(std::string("\xBC\x01") + std::string(11, '\xFF'), out));
}

TEST(redis_envelope, version_2_carries_the_channel_position) {
  auto m = sample();
  m.epoch = "0123456789abcdef";
  m.offset = 1234567890123ull;
  const auto bytes = encode_envelope_v2(m);
  // What the publish script builds: header, then the body the node sent.
  EXPECT_EQ(bytes,
            std::string("\xBC\x02\x10", 3) + m.epoch + "\x0D" + "1234567890123" + encode_envelope_body(m));
  core::message out;
  ASSERT_TRUE(decode_envelope(bytes, out));
  EXPECT_EQ(out.epoch, m.epoch);
  EXPECT_EQ(out.offset, m.offset);
  EXPECT_EQ(out.id, m.id);
  EXPECT_EQ(out.channel, m.channel);
  EXPECT_EQ(out.event, m.event);
  EXPECT_EQ(out.payload, m.payload);
  // Version 1 still decodes, without a position (also into a message that had one).
  ASSERT_TRUE(decode_envelope(encode_envelope(sample()), out));
  EXPECT_EQ(out.offset, 0u);
  EXPECT_TRUE(out.epoch.empty());
}

TEST(redis_envelope, version_2_rejects_a_bad_position) {
  const auto body = encode_envelope_body(sample());
  core::message out;
  auto v2 = [&](const std::string& epoch, const std::string& offset) {
    return std::string("\xBC\x02", 2) + static_cast<char>(epoch.size()) + epoch +
           static_cast<char>(offset.size()) + offset + body;
  };
  EXPECT_TRUE(decode_envelope(v2("e", "1"), out));
  EXPECT_FALSE(decode_envelope(v2("", "1"), out)) << "no epoch";
  EXPECT_FALSE(decode_envelope(v2("e", "0"), out)) << "offsets start at 1";
  EXPECT_FALSE(decode_envelope(v2("e", "01"), out));
  EXPECT_FALSE(decode_envelope(v2("e", "1x"), out));
  EXPECT_FALSE(decode_envelope(v2("e", ""), out));
  EXPECT_FALSE(decode_envelope(v2("e", "18446744073709551616"), out)) << "2^64";
  EXPECT_TRUE(decode_envelope(v2("e", "18446744073709551615"), out));
}

// ---- version 3: join / leave and control ---------------------------------------------------------------

TEST(redis_envelope, a_member_record_round_trips_with_or_without_info) {
  for (const core::presence_member& m :
       {core::presence_member{"n1-7", "alice", R"({"name":"Al"})"}, core::presence_member{"n1-8", "", ""},
        core::presence_member{std::string(300, 'c'), std::string(200, 'u'), std::string(2000, 'i')}}) {
    core::presence_member out;
    ASSERT_TRUE(decode_presence_record(encode_presence_record(m), out));
    EXPECT_EQ(out.client_id, m.client_id);
    EXPECT_EQ(out.user, m.user);
    EXPECT_EQ(out.info, m.info);
  }
  core::presence_member out;
  EXPECT_FALSE(decode_presence_record("", out));
  EXPECT_FALSE(decode_presence_record(std::string("\x00\x01u", 3), out)) << "no client id";
  EXPECT_FALSE(decode_presence_record(std::string("\x02id\x09u", 5), out)) << "user runs past the end";
}

TEST(redis_envelope, a_join_or_leave_is_its_header_and_the_member_record) {
  const core::presence_member m{"n1-7", "alice", R"(["x"])"};
  for (auto type : {core::message::kind::join, core::message::kind::leave}) {
    const auto bytes = encode_presence_header(type, "chat:room-42") + encode_presence_record(m);
    EXPECT_EQ(bytes.substr(0, 3), std::string("\xBC\x03") + (type == core::message::kind::join ? "j" : "l"));
    core::message out;
    out.offset = 9;
    out.epoch = "old";
    ASSERT_TRUE(decode_envelope(bytes, out));
    EXPECT_EQ(out.type, type);
    EXPECT_EQ(out.channel, "chat:room-42");
    EXPECT_EQ(out.id, m.client_id);
    EXPECT_EQ(out.event, m.user);
    EXPECT_EQ(out.payload, m.info);
    EXPECT_EQ(out.offset, 0u) << "takes no offset";
    EXPECT_TRUE(out.epoch.empty());
  }
  // Decoding a publication after a join resets the kind.
  core::message out;
  ASSERT_TRUE(decode_envelope(
      encode_presence_header(core::message::kind::join, "c") + encode_presence_record(m), out));
  ASSERT_TRUE(decode_envelope(encode_envelope(sample()), out));
  EXPECT_EQ(out.type, core::message::kind::publication);
}

TEST(redis_envelope, control_messages_round_trip_and_are_not_messages) {
  for (const control_message& c :
       {control_message{control_message::kind::disconnect_user, "alice", ""},
        control_message{control_message::kind::unsubscribe_user, "bob", "chat:1"}}) {
    const auto bytes = encode_control_envelope(c);
    control_message out;
    ASSERT_TRUE(decode_control_envelope(bytes, out));
    EXPECT_EQ(out.what, c.what);
    EXPECT_EQ(out.user, c.user);
    EXPECT_EQ(out.channel, c.channel);
    core::message m;
    EXPECT_FALSE(decode_envelope(bytes, m)) << "on a channel it is unreadable, not a message";
  }
  control_message out;
  EXPECT_FALSE(decode_control_envelope(encode_envelope(sample()), out));
  EXPECT_FALSE(decode_control_envelope(
      encode_presence_header(core::message::kind::join, "c") + encode_presence_record({"id", "u", ""}), out));
  EXPECT_FALSE(decode_control_envelope(std::string("\xBC\x03"
                                                   "d\x00\x00",
                                                   5),
                                       out))
      << "no user";
  EXPECT_FALSE(decode_control_envelope(std::string("\xBC\x03"
                                                   "u\x00\x01u",
                                                   6),
                                       out))
      << "no channel";
  EXPECT_FALSE(decode_control_envelope(std::string("\xBC\x03"
                                                   "d\x01"
                                                   "c\x01u",
                                                   7),
                                       out))
      << "a channel";
  EXPECT_FALSE(decode_control_envelope(std::string("\xBC\x03"
                                                   "d\x00\x01u!",
                                                   7),
                                       out))
      << "trailing bytes";
  EXPECT_TRUE(decode_control_envelope(std::string("\xBC\x03"
                                                  "d\x00\x01u",
                                                  6),
                                      out));
}

TEST(redis_envelope, version_3_rejects_unknown_kinds_and_truncation) {
  core::message out;
  const auto good =
      encode_presence_header(core::message::kind::leave, "ch") + encode_presence_record({"id", "u", ""});
  EXPECT_TRUE(decode_envelope(good, out));
  for (std::size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(decode_envelope(good.substr(0, n), out)) << n;
  std::string unknown = good;
  unknown[2] = 'x';
  EXPECT_FALSE(decode_envelope(unknown, out));
  EXPECT_FALSE(decode_envelope(std::string("\xBC\x03j\x00\x02id\x01u", 9), out)) << "no channel";
}

}  // namespace
}  // namespace bc::broker
