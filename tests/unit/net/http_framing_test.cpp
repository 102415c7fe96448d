#include "net/http_framing.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <utility>

namespace bc::net {
namespace {

namespace http = boost::beast::http;

http::fields head(std::initializer_list<std::pair<http::field, std::string_view>> lines) {
  http::fields f;
  for (const auto& [name, value] : lines) f.insert(name, value);
  return f;
}

unsigned status_of(unsigned version, const http::fields& f) {
  const auto bad = check_request_framing(version, f);
  return bad ? bad->status : 0;
}

TEST(http_framing, plain_requests_pass) {
  EXPECT_EQ(status_of(11, head({{http::field::host, "example.com:8000"}})), 0u);
  EXPECT_EQ(status_of(11, head({{http::field::host, ""}})), 0u);  // RFC 9112 3.2: empty when no authority
  EXPECT_EQ(status_of(11, head({{http::field::host, "[::1]:80"}, {http::field::content_length, "5"}})), 0u);
  EXPECT_EQ(status_of(10, head({})), 0u);  // HTTP/1.0 needs no Host
}

TEST(http_framing, host_rules) {
  EXPECT_EQ(status_of(11, head({})), 400u);
  EXPECT_EQ(status_of(11, head({{http::field::host, "a"}, {http::field::host, "a"}})), 400u);
  EXPECT_EQ(status_of(10, head({{http::field::host, "a"}, {http::field::host, "b"}})), 400u);
  for (std::string_view bad : {"a b", "a/b", "u@a", "a\\b", "a?b", "a#b", "a\tb"}) {
    EXPECT_EQ(status_of(11, head({{http::field::host, bad}})), 400u) << bad;
  }
}

TEST(http_framing, chunked_last_is_the_only_transfer_encoding_accepted) {
  auto te = [](std::string_view value) {
    return status_of(11, head({{http::field::host, "h"}, {http::field::transfer_encoding, value}}));
  };
  EXPECT_EQ(te("chunked"), 0u);
  EXPECT_EQ(te("Chunked"), 0u);
  EXPECT_EQ(te(" chunked ,"), 0u);  // empty list elements are allowed (RFC 9110 5.6.1)
  for (std::string_view bad : {"xchunked", "chunked, identity", "gzip", "identity", "", ",", "chunked;a=1"}) {
    EXPECT_EQ(te(bad), 400u) << bad;
  }
  EXPECT_EQ(te("chunked, chunked"), 400u);
  EXPECT_EQ(te("gzip, chunked"), 501u);
  EXPECT_EQ(te("deflate,chunked"), 501u);
}

TEST(http_framing, transfer_encoding_lines_form_one_list) {
  auto f = head({{http::field::host, "h"},
                 {http::field::transfer_encoding, "chunked"},
                 {http::field::transfer_encoding, "identity"}});
  EXPECT_EQ(status_of(11, f), 400u);
  f = head({{http::field::host, "h"},
            {http::field::transfer_encoding, "gzip"},
            {http::field::transfer_encoding, "chunked"}});
  EXPECT_EQ(status_of(11, f), 501u);
}

TEST(http_framing, transfer_encoding_with_content_length_or_in_http10_is_refused) {
  EXPECT_EQ(status_of(11, head({{http::field::host, "h"},
                                {http::field::transfer_encoding, "chunked"},
                                {http::field::content_length, "3"}})),
            400u);
  EXPECT_EQ(status_of(10, head({{http::field::transfer_encoding, "chunked"}})), 400u);
}

TEST(http_framing, obs_fold_is_found_across_pieces) {
  obs_fold_detector d;
  d.feed("POST / HTTP/1.1\r\nHost: a\r\nX: a\r");
  d.feed("\n");
  EXPECT_FALSE(d.found());
  d.feed(" b\r\n\r\n");
  EXPECT_TRUE(d.found());
}

TEST(http_framing, obs_fold_detector_stops_at_the_end_of_the_head) {
  obs_fold_detector d;
  d.feed("POST / HTTP/1.1\r\nHost: a\r\n\r\n");
  d.feed("\n body that starts with a space after a newline\n\tand a tab");
  EXPECT_FALSE(d.found());
  obs_fold_detector lf;
  lf.feed("GET / HTTP/1.1\nHost: a\n\n \n");  // bare LF line ends: the blank line ends the head too
  EXPECT_FALSE(lf.found());
  obs_fold_detector tab;
  tab.feed("GET / HTTP/1.1\r\nA: 1\r\n\tcontinued\r\n\r\n");
  EXPECT_TRUE(tab.found());
}

TEST(http_framing, absolute_form_targets_become_origin_form) {
  EXPECT_EQ(origin_form("/broadcaster/health"), "/broadcaster/health");
  EXPECT_EQ(origin_form("http://example.com/broadcaster/health"), "/broadcaster/health");
  EXPECT_EQ(origin_form("HTTPS://example.com:8443/a?b=c"), "/a?b=c");
  EXPECT_EQ(origin_form("http://example.com"), "/");
  EXPECT_EQ(origin_form("http://example.com?x"), "?x");
  EXPECT_EQ(origin_form("*"), "*");
  EXPECT_EQ(origin_form("ftp://example.com/a"), "ftp://example.com/a");
}

}  // namespace
}  // namespace bc::net
