#include "net/console_assets.hpp"

#include <gtest/gtest.h>

#include <string_view>

namespace bc::net {
namespace {

TEST(ConsoleAssets, TheFourFilesAreBuiltIn) {
  for (const char* name : {"index.html", "console.css", "console.js", "broadcaster.js"}) {
    const console_asset* a = find_console_asset(name);
    ASSERT_NE(a, nullptr) << name;
    EXPECT_FALSE(a->body.empty()) << name;
    EXPECT_EQ(a->etag.front(), '"');
  }
  EXPECT_NE(find_console_asset("index.html")->body.find("<html"), std::string_view::npos);
  EXPECT_EQ(find_console_asset("index.html")->content_type, "text/html; charset=utf-8");
  EXPECT_EQ(find_console_asset("console.js")->content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(find_console_asset("console.css")->content_type, "text/css; charset=utf-8");
  for (const char* name : {"", "README.md", "/index.html", "../index.html", "INDEX.HTML", "index.html/"}) {
    EXPECT_EQ(find_console_asset(name), nullptr) << name;
  }
}

TEST(ConsoleAssets, TheExampleChatIsBuiltInWithTheSdkBesideIt) {
  const console_asset* page = find_console_asset("chat/index.html");
  const console_asset* script = find_console_asset("chat/chat.js");
  const console_asset* sdk = find_console_asset("chat/broadcaster.js");
  ASSERT_NE(page, nullptr);
  ASSERT_NE(script, nullptr);
  ASSERT_NE(sdk, nullptr);
  EXPECT_NE(page->body.find("./chat.js"), std::string_view::npos);
  EXPECT_NE(script->body.find("./broadcaster.js"), std::string_view::npos);  // hence chat/broadcaster.js
  EXPECT_EQ(sdk->body, find_console_asset("broadcaster.js")->body);
  EXPECT_EQ(sdk->etag, find_console_asset("broadcaster.js")->etag);
  EXPECT_EQ(page->content_type, "text/html; charset=utf-8");
  EXPECT_EQ(script->content_type, "text/javascript; charset=utf-8");
}

TEST(ConsoleAssets, TheSdkIsThereOrTheStubSaysSo) {
  const auto body = find_console_asset("broadcaster.js")->body;
  EXPECT_NE(body.find("class Broadcaster"), std::string_view::npos);
  EXPECT_EQ(body.find("SDK (broadcaster.js) is missing") == std::string_view::npos, console_sdk_embedded());
}

}  // namespace
}  // namespace bc::net
