#include "net/ws/deflate_offer.hpp"

#include <gtest/gtest.h>

namespace bc::ws {
namespace {

constexpr std::string_view base =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

void expect_accepted(std::string_view offers, std::string_view response = base) {
  const deflate_agreement a = negotiate_deflate(offers);
  EXPECT_TRUE(a.enabled) << offers;
  EXPECT_EQ(a.response, response) << offers;
}

void expect_declined(std::string_view offers) {
  const deflate_agreement a = negotiate_deflate(offers);
  EXPECT_FALSE(a.enabled) << offers;
  EXPECT_EQ(a.response, "") << offers;
}

TEST(deflate_offer, no_offer_no_extension) {
  expect_declined("");
  expect_declined("x-webkit-deflate-frame");
  expect_declined("foo; bar=1, baz");
}

TEST(deflate_offer, plain_offer_gets_no_context_takeover_both_ways) {
  expect_accepted("permessage-deflate");
  expect_accepted("  permessage-deflate  ");
  expect_accepted("PerMessage-Deflate");
}

TEST(deflate_offer, what_browsers_and_python_send) {
  expect_accepted("permessage-deflate; client_max_window_bits");  // Chrome, Firefox, websockets
  expect_accepted("permessage-deflate; client_max_window_bits=15");
  expect_accepted("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  expect_accepted("permessage-deflate;client_max_window_bits=9;server_no_context_takeover");
}

TEST(deflate_offer, server_max_window_bits_is_honoured_only_at_15) {
  expect_accepted("permessage-deflate; server_max_window_bits=15",
                  std::string(base) + "; server_max_window_bits=15");
  expect_accepted("permessage-deflate; server_max_window_bits=\"15\"",
                  std::string(base) + "; server_max_window_bits=15");
  for (int bits = 8; bits < 15; ++bits)
    expect_declined("permessage-deflate; server_max_window_bits=" + std::to_string(bits));
}

TEST(deflate_offer, first_acceptable_offer_wins) {
  expect_accepted("permessage-deflate; server_max_window_bits=10, permessage-deflate");
  expect_accepted("x-other, permessage-deflate; unknown_param, permessage-deflate; client_max_window_bits");
  // Several header fields joined by the HTTP layer.
  expect_accepted(
      "permessage-deflate; server_max_window_bits=9, permessage-deflate; server_max_window_bits=15",
      std::string(base) + "; server_max_window_bits=15");
}

TEST(deflate_offer, malformed_or_unknown_parameters_decline_the_offer) {
  expect_declined("permessage-deflate; unknown");
  expect_declined("permessage-deflate; server_no_context_takeover=1");
  expect_declined("permessage-deflate; client_no_context_takeover=yes");
  expect_declined("permessage-deflate; server_no_context_takeover; server_no_context_takeover");
  expect_declined("permessage-deflate; client_max_window_bits; client_max_window_bits=10");
  expect_declined("permessage-deflate; server_max_window_bits");  // a value is required
  for (const char* bad : {"7", "16", "015", "08", "1a", "", "-9", "15.0", "\"\""})
    expect_declined(std::string("permessage-deflate; client_max_window_bits=") + bad);
  expect_declined("permessage-deflate; server_max_window_bits=16");
}

TEST(deflate_offer, a_header_that_does_not_parse_declines_everything) {
  expect_declined("permessage-deflate; client_max_window_bits=\"15");  // unterminated quote
  expect_declined("permessage-deflate;; client_max_window_bits");
  expect_declined("permessage-deflate; =15");
  expect_declined("permessage-deflate permessage-deflate");
  expect_declined("; permessage-deflate");
}

TEST(deflate_offer, quoted_values_may_hide_separators) {
  // A quoted comma or semicolon belongs to the value; the value is then not a valid window size.
  expect_accepted("x-ext; p=\"a, permessage-deflate; b\", permessage-deflate");
  expect_declined("x-ext; p=\"a, permessage-deflate; b\"");
}

TEST(deflate_offer, empty_list_elements_are_skipped) {
  expect_accepted(", ,permessage-deflate,");
}

}  // namespace
}  // namespace bc::ws
