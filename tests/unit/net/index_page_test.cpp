#include "net/index_page.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <string>

namespace bc::net {
namespace {

TEST(IndexPage, BrowsersGetHtmlWithALinkToTheConsole) {
  const auto page = make_index_page("/broadcaster", true, false,
                                    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("href=\"/broadcaster/console/\""), std::string::npos) << page.body;
  EXPECT_EQ(page.body.find("/console/chat/"), std::string::npos) << "the chat is served in dev mode only";
  EXPECT_NE(page.body.find("docs/"), std::string::npos);
}

TEST(IndexPage, OthersGetJson) {
  for (const char* accept : {"", "*/*", "application/json"}) {
    const auto page = make_index_page("/bc", true, true, accept);
    EXPECT_EQ(page.content_type, "application/json") << accept;
    const auto j = boost::json::parse(page.body).as_object();
    EXPECT_EQ(j.at("console"), "/bc/console/");
    EXPECT_EQ(j.at("chat"), "/bc/console/chat/");
    EXPECT_EQ(j.at("websocket"), "/bc/websocket");
    EXPECT_EQ(j.at("publish"), "/bc/publish");
    EXPECT_NE(j.at("docs").as_string().find("docs/"), std::string::npos);
  }
}

TEST(IndexPage, WithoutTheConsoleItSaysHowToTurnItOn) {
  const auto json = boost::json::parse(make_index_page("", false, false, "").body).as_object();
  EXPECT_TRUE(json.at("console").is_null());
  EXPECT_TRUE(json.at("chat").is_null());
  EXPECT_EQ(json.at("websocket"), "/websocket");
  const auto html = make_index_page("", false, false, "text/html").body;
  EXPECT_EQ(html.find("href=\"/console/\""), std::string::npos);
  EXPECT_NE(html.find("--console"), std::string::npos);
}

TEST(IndexPage, TheBasePathIsEscapedInHtml) {
  const auto html = make_index_page("/a\"<b>", true, false, "text/html").body;
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_NE(html.find("/a&quot;&lt;b&gt;/console/"), std::string::npos);
}

}  // namespace
}  // namespace bc::net
