#include "net/console_path.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace bc::net {
namespace {

namespace fs = std::filesystem;

TEST(ConsoleFileName, MapsTheRootToIndex) {
  EXPECT_EQ(console_file_name("/"), "index.html");
  EXPECT_EQ(console_file_name("/console.js"), "console.js");
  EXPECT_EQ(console_file_name("/chat/index.html"), "chat/index.html");
  EXPECT_EQ(console_file_name("/a%20b.js"), "a b.js");  // decoded once
}

TEST(ConsoleFileName, RefusesEveryTraversalSpelling) {
  for (const char* rest : {
           "",                          // no leading slash at all
           "console.js",                // not a path under /console
           "//etc/passwd",              // absolute after the join
           "/%2Fetc/passwd",            // the same, encoded
           "/%2fetc%2fpasswd",          //
           "/..",                       //
           "/../etc/passwd",            //
           "/chat/../../etc/passwd",    // ".." after a real folder
           "/chat/%2e%2e/%2e%2e/x",     // encoded dots
           "/%2e%2e%2f%2e%2e%2fx",      // encoded dots and slashes
           "/%252e%252e/%252e%252e/x",  // double-encoded: decoded once, then refused
           "/%25",                      //
           "/..%5c..%5cetc%5cpasswd",   // encoded backslashes
           "/..\\..\\etc\\passwd",      // backslashes
           "/a\\b",                     //
           "/chat//x.js",               // empty segment
           "/chat/",                    // a directory
           "/./index.html",             //
           "/.env",                     // dotfiles
           "/chat/.git/config",         //
           "/%00",                      // NUL
           "/a%0ab",                    // control character
           "/%",                        // broken escapes
           "/%2",                       //
           "/%zz",                      //
       }) {
    EXPECT_EQ(console_file_name(rest), std::nullopt) << rest;
  }
}

class ReadConsoleFile : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("bc-console-test-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    root_ = base_ / "console";
    fs::create_directories(root_ / "chat");
    write(root_ / "index.html", "<p>page</p>");
    write(root_ / "chat" / "chat.js", "chat");
    write(base_ / "secret.txt", "secret");
    write(base_ / "console-evil" / "x.txt", "sibling");  // shares the root's name as a prefix
  }
  void TearDown() override { fs::remove_all(base_); }

  static void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
  }

  fs::path base_, root_;
};

TEST_F(ReadConsoleFile, ServesRegularFilesInside) {
  EXPECT_EQ(read_console_file(root_, "index.html"), "<p>page</p>");
  EXPECT_EQ(read_console_file(root_, "chat/chat.js"), "chat");
  fs::create_symlink(root_ / "index.html", root_ / "alias.html");  // a link that stays inside is fine
  EXPECT_EQ(read_console_file(root_, "alias.html"), "<p>page</p>");
}

TEST_F(ReadConsoleFile, RefusesWhatResolvesOutsideOrIsNoFile) {
  // Names console_file_name would refuse anyway: the second check holds on its own.
  EXPECT_EQ(read_console_file(root_, "../secret.txt"), std::nullopt);
  EXPECT_EQ(read_console_file(root_, "/etc/passwd"), std::nullopt);
  EXPECT_EQ(read_console_file(root_, "chat/../../secret.txt"), std::nullopt);
  EXPECT_EQ(read_console_file(root_, "../console-evil/x.txt"), std::nullopt);
  EXPECT_EQ(read_console_file(root_, ""), std::nullopt);
  EXPECT_EQ(read_console_file(root_, "."), std::nullopt);
  // A symlink inside that points out, to a file or to a folder.
  fs::create_symlink(base_ / "secret.txt", root_ / "leak.txt");
  fs::create_directory_symlink(base_, root_ / "up");
  EXPECT_EQ(read_console_file(root_, "leak.txt"), std::nullopt);
  EXPECT_EQ(read_console_file(root_, "up/secret.txt"), std::nullopt);
  // Directories, missing files and a missing root.
  EXPECT_EQ(read_console_file(root_, "chat"), std::nullopt);
  EXPECT_EQ(read_console_file(root_, "nope.js"), std::nullopt);
  EXPECT_EQ(read_console_file(base_ / "missing", "index.html"), std::nullopt);
}

TEST_F(ReadConsoleFile, ARelativeRootWorks) {
  const auto cwd = fs::current_path();
  fs::current_path(base_);
  EXPECT_EQ(read_console_file("console", "index.html"), "<p>page</p>");
  EXPECT_EQ(read_console_file("console", "../secret.txt"), std::nullopt);
  fs::current_path(cwd);
}

TEST(ConsoleEtag, StableQuotedAndContentBound) {
  const auto tag = console_etag("abc");
  EXPECT_EQ(tag, console_etag("abc"));
  EXPECT_NE(tag, console_etag("abd"));
  ASSERT_GE(tag.size(), 3u);
  EXPECT_EQ(tag.front(), '"');
  EXPECT_EQ(tag.back(), '"');
}

TEST(EtagMatches, WeakComparisonListsAndStar) {
  EXPECT_TRUE(etag_matches("\"x\"", "\"x\""));
  EXPECT_TRUE(etag_matches("W/\"x\"", "\"x\""));
  EXPECT_TRUE(etag_matches("\"a\", \"x\"", "\"x\""));
  EXPECT_TRUE(etag_matches("*", "\"x\""));
  EXPECT_FALSE(etag_matches("", "\"x\""));
  EXPECT_FALSE(etag_matches("\"y\"", "\"x\""));
  EXPECT_FALSE(etag_matches("x", "\"x\""));
  EXPECT_FALSE(etag_matches(",", "\"x\""));
}

}  // namespace
}  // namespace bc::net

namespace bc::net {
namespace {

TEST(console_path, direct_hosts_are_addresses_or_localhost) {
  for (std::string_view yes : {"127.0.0.1", "127.0.0.1:8000", "10.1.2.3:80", "localhost", "LocalHost:8000",
                               "[::1]", "[::1]:8000", "[fe80::1]:1"}) {
    EXPECT_TRUE(is_direct_host(yes)) << yes;
  }
  for (std::string_view no : {"", "evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "1.2.3",
                              "1.2.3.4.5", "[::1", "[::1]x", "a:80", ":80", "localhos"}) {
    EXPECT_FALSE(is_direct_host(no)) << no;
  }
}

}  // namespace
}  // namespace bc::net
