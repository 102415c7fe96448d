#include "app/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

namespace bc::app {
namespace {

using namespace std::chrono_literals;

// The settings this file is about, plus those that would change what parse_config needs (secrets, a file).
constexpr const char* scrubbed[] = {"HISTORY_SIZE", "HISTORY_TTL", "HISTORY_MEMORY_LIMIT", "PRESENCE",
                                    "PRESENCE_TTL", "CONFIG",      "JWT_SECRET",           "API_KEYS"};

// Sets the given environment variables for one test and restores the scrubbed ones after it.
class scoped_env {
 public:
  explicit scoped_env(std::map<std::string, std::string> vars = {}) {
    for (const char* name : scrubbed) {
      if (const char* v = std::getenv(name)) saved_[name] = v;
      ::unsetenv(name);
    }
    for (const auto& [k, v] : vars) {
      ::setenv(k.c_str(), v.c_str(), 1);
      set_.push_back(k);
    }
  }
  ~scoped_env() {
    for (const auto& k : set_) ::unsetenv(k.c_str());
    for (const auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  std::map<std::string, std::string> saved_;
  std::vector<std::string> set_;
};

struct outcome {
  std::optional<config> cfg;
  int exit_code = -1;
  std::string out, err;
};

outcome parse(std::vector<std::string> args) {
  args.insert(args.begin(), {"broadcaster", "--dev"});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  outcome o;
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  o.cfg = parse_config(static_cast<int>(args.size()), argv.data(), o.exit_code);
  o.out = testing::internal::GetCapturedStdout();
  o.err = testing::internal::GetCapturedStderr();
  return o;
}

class config_file : public testing::Test {
 protected:
  std::string write(const std::string& text, const std::string& name = "c.toml") {
    const auto path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("bc_config_test_" + std::to_string(::getpid()) + "_" +
            testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Starting with `file` fails with exit code 2 and one line on stderr holding every one of `names`.
  void expect_rejected(const std::string& file, std::initializer_list<std::string_view> names) {
    const auto o = parse({"--config", write(file)});
    EXPECT_FALSE(o.cfg) << file;
    EXPECT_EQ(o.exit_code, 2) << file;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    for (const auto name : names)
      EXPECT_NE(o.err.find(name), std::string::npos) << name << " not in " << o.err;
  }

  scoped_env env_;
  std::filesystem::path dir_;
};

TEST(config, history_and_presence_defaults) {
  scoped_env env;
  const auto o = parse({});
  ASSERT_TRUE(o.cfg) << o.err;
  const auto& d = o.cfg->channels.defaults();
  EXPECT_EQ(d.history_size, 0u);
  EXPECT_EQ(d.history_ttl, 300s);
  EXPECT_FALSE(d.presence);
  EXPECT_TRUE(o.cfg->channels.rules().empty());
  EXPECT_FALSE(o.cfg->channels.any_history());
  EXPECT_EQ(o.cfg->history_memory_limit, std::size_t{256} << 20);
  EXPECT_EQ(o.cfg->presence_ttl, 60s);
}

TEST(config, history_and_presence_from_flags) {
  scoped_env env;
  const auto o = parse({"--history-size", "50", "--history-ttl", "20", "--history-memory-limit", "1000000",
                        "--presence", "--presence-ttl", "7"});
  ASSERT_TRUE(o.cfg) << o.err;
  const auto& d = o.cfg->channels.defaults();
  EXPECT_EQ(d.history_size, 50u);
  EXPECT_EQ(d.history_ttl, 20s);
  EXPECT_TRUE(d.presence);
  EXPECT_EQ(o.cfg->history_memory_limit, 1000000u);
  EXPECT_EQ(o.cfg->presence_ttl, 7s);
  EXPECT_EQ(o.cfg->channels.for_channel("any").history_size, 50u);
}

TEST(config, history_and_presence_from_environment) {
  scoped_env env({{"HISTORY_SIZE", "12"},
                  {"HISTORY_TTL", "34"},
                  {"HISTORY_MEMORY_LIMIT", "5678"},
                  {"PRESENCE", "true"},
                  {"PRESENCE_TTL", "9"}});
  const auto o = parse({});
  ASSERT_TRUE(o.cfg) << o.err;
  const auto& d = o.cfg->channels.defaults();
  EXPECT_EQ(d.history_size, 12u);
  EXPECT_EQ(d.history_ttl, 34s);
  EXPECT_TRUE(d.presence);
  EXPECT_EQ(o.cfg->history_memory_limit, 5678u);
  EXPECT_EQ(o.cfg->presence_ttl, 9s);
}

TEST_F(config_file, history_and_presence_from_the_file_under_env_and_flags) {
  const auto file = write(
      "history_size = 3\nhistory_ttl = 4\nhistory_memory_limit = 5000\npresence = true\npresence_ttl = 6\n");
  auto o = parse({"--config", file});
  ASSERT_TRUE(o.cfg) << o.err;
  EXPECT_EQ(o.cfg->channels.defaults().history_size, 3u);
  EXPECT_EQ(o.cfg->channels.defaults().history_ttl, 4s);
  EXPECT_TRUE(o.cfg->channels.defaults().presence);
  EXPECT_EQ(o.cfg->history_memory_limit, 5000u);
  EXPECT_EQ(o.cfg->presence_ttl, 6s);

  scoped_env env({{"HISTORY_SIZE", "30"}, {"PRESENCE_TTL", "60"}});
  o = parse({"--config", file, "--history-size", "300", "--presence=false"});
  ASSERT_TRUE(o.cfg) << o.err;
  EXPECT_EQ(o.cfg->channels.defaults().history_size, 300u);  // flag over env over file
  EXPECT_FALSE(o.cfg->channels.defaults().presence);         // flag over file
  EXPECT_EQ(o.cfg->presence_ttl, 60s);                       // env over file
  EXPECT_EQ(o.cfg->channels.defaults().history_ttl, 4s);     // file
}

TEST(config, out_of_bounds_values_exit_2) {
  scoped_env env;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--history-size", "1000001"},
           {"--history-size", "-1"},
           {"--history-ttl", "0"},
           {"--history-ttl", "2592001"},
           {"--history-ttl", "1.5"},
           {"--history-memory-limit", "0"},
           {"--history-memory-limit", "1099511627777"},
           {"--history-memory-limit", "256MiB"},
           {"--presence-ttl", "0"},
           {"--presence-ttl", "86401"},
       }) {
    const auto o = parse(args);
    EXPECT_FALSE(o.cfg) << args[0] << " " << args[1];
    EXPECT_EQ(o.exit_code, 2) << args[0] << " " << args[1];
    EXPECT_NE(o.err.find(args[0]), std::string::npos) << o.err;
  }
  // The bounds themselves are accepted.
  const auto o = parse({"--history-size", "1000000", "--history-ttl", "2592000", "--history-memory-limit",
                        "1099511627776", "--presence-ttl", "86400"});
  EXPECT_TRUE(o.cfg) << o.err;
}

TEST_F(config_file, an_overridden_file_value_is_still_checked) {
  const auto o = parse({"--config", write("history_ttl = 0\n"), "--history-ttl", "5"});
  EXPECT_FALSE(o.cfg);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("history_ttl"), std::string::npos) << o.err;
}

TEST_F(config_file, channel_rules_in_order_with_partial_fields) {
  const auto o = parse({"--config", write(R"(history_size = 10
history_ttl = 100

[[channels]]
pattern = "chat:vip:*"
history_size = 1000

[[channels]]
pattern = "chat:*"
history_size = 50
history_ttl = 30
presence = true

[[channels]]
pattern = "*:tmp"
history_size = 0
join_leave_limit = 0
)")});
  ASSERT_TRUE(o.cfg) << o.err;
  const auto& ch = o.cfg->channels;
  ASSERT_EQ(ch.rules().size(), 3u);
  EXPECT_EQ(ch.rules()[0].pattern, "chat:vip:*");
  EXPECT_EQ(ch.rules()[0].history_size, 1000u);
  EXPECT_FALSE(ch.rules()[0].history_ttl);
  EXPECT_FALSE(ch.rules()[0].presence);
  EXPECT_EQ(ch.rules()[1].history_ttl, 30s);
  EXPECT_EQ(ch.rules()[1].presence, true);
  EXPECT_EQ(ch.rules()[2].history_size, 0u);

  const auto vip = ch.for_channel("chat:vip:1");
  EXPECT_EQ(vip.history_size, 1000u);
  EXPECT_EQ(vip.history_ttl, 100s);  // the default, not the next rule's
  EXPECT_FALSE(vip.presence);
  const auto chat = ch.for_channel("chat:1");
  EXPECT_EQ(chat.history_size, 50u);
  EXPECT_EQ(chat.history_ttl, 30s);
  EXPECT_TRUE(chat.presence);
  EXPECT_EQ(ch.for_channel("news:tmp").history_size, 0u);
  EXPECT_EQ(ch.for_channel("news").history_size, 10u);
  EXPECT_EQ(ch.for_channel("news:tmp").join_leave_limit, 0u);
  EXPECT_EQ(ch.for_channel("news").join_leave_limit, 1000u);
}

TEST_F(config_file, rules_only_from_the_file) {
  scoped_env env(std::map<std::string, std::string>{
      {"CHANNELS", "x"}});  // no such setting: ignored, as any unknown variable
  const auto o = parse({"--config", write("channels = []\n")});
  ASSERT_TRUE(o.cfg) << o.err;
  EXPECT_TRUE(o.cfg->channels.rules().empty());
  EXPECT_EQ(parse({"--channels", "x"}).exit_code, 2);
}

TEST_F(config_file, bad_rules_exit_2_naming_the_rule_and_the_key) {
  expect_rejected("[[channels]]\npattern = \"chat:*\"\nhistroy_size = 5\n",
                  {"rule 1", "\"chat:*\"", "histroy_size", "did you mean 'history_size'", "line 3"});
  expect_rejected("[[channels]]\npattern = \"a\"\n[[channels]]\nhistory_size = 5\n", {"rule 2", "pattern"});
  expect_rejected("[[channels]]\npattern = \"a b\"\n", {"rule 1", "pattern"});
  expect_rejected("[[channels]]\npattern = \"chat.*\"\n", {"rule 1", "pattern"});
  expect_rejected("[[channels]]\npattern = \"\"\n", {"rule 1", "pattern"});
  expect_rejected("[[channels]]\npattern = \"" + std::string(256, 'a') + "\"\n", {"rule 1", "pattern"});
  expect_rejected("[[channels]]\npattern = 5\n", {"rule 1", "pattern"});
  expect_rejected("[[channels]]\npattern = \"a\"\nhistory_size = -1\n", {"rule 1", "\"a\"", "history_size"});
  expect_rejected("[[channels]]\npattern = \"a\"\nhistory_size = 1000001\n", {"rule 1", "history_size"});
  expect_rejected("[[channels]]\npattern = \"a\"\nhistory_size = \"5\"\n", {"rule 1", "history_size"});
  expect_rejected("[[channels]]\npattern = \"a\"\nhistory_ttl = 0\n", {"rule 1", "history_ttl"});
  expect_rejected("[[channels]]\npattern = \"a\"\nhistory_ttl = 1.5\n", {"rule 1", "history_ttl"});
  expect_rejected("[[channels]]\npattern = \"a\"\npresence = \"yes\"\n", {"rule 1", "presence"});
  expect_rejected("[[channels]]\npattern = \"a\"\npresence_ttl = 5\n", {"rule 1", "presence_ttl"});
  expect_rejected("[[channels]]\npattern = \"a\"\njoin_leave_limit = -1\n", {"rule 1", "join_leave_limit"});
  expect_rejected("[[channels]]\npattern = \"a\"\n[channels.sub]\nx = 1\n", {"rule 1", "sub"});
  expect_rejected("[channels]\npattern = \"a\"\n", {"channels", "[[channels]]"});
  expect_rejected("channels = 5\n", {"channels", "[[channels]]"});
  expect_rejected("channels = [1]\n", {"channels", "[[channels]]"});
}

TEST_F(config_file, print_config_round_trip) {
  const auto file = write(R"(history_size = 10
presence_ttl = 15
history_memory_limit = 123456

[[channels]]
pattern = "chat:*"
history_size = 100
history_ttl = 60

[[channels]]
pattern = "*"
presence = true
)");
  const auto printed = parse({"--config", file, "--history-ttl", "77", "--print-config"});
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_FALSE(printed.cfg);
  EXPECT_NE(printed.out.find("history_size = 10 "), std::string::npos) << printed.out;
  EXPECT_NE(printed.out.find("[[channels]]\npattern = \"chat:*\"\nhistory_size = 100\nhistory_ttl = 60\n"),
            std::string::npos)
      << printed.out;

  const auto a = parse({"--config", file, "--history-ttl", "77"});
  const auto b = parse({"--config", write(printed.out, "printed.toml")});
  ASSERT_TRUE(a.cfg) << a.err;
  ASSERT_TRUE(b.cfg) << b.err;
  for (const auto* c : {&*a.cfg, &*b.cfg}) {
    EXPECT_EQ(c->channels.defaults().history_size, 10u);
    EXPECT_EQ(c->channels.defaults().history_ttl, 77s);
    EXPECT_EQ(c->history_memory_limit, 123456u);
    EXPECT_EQ(c->presence_ttl, 15s);
  }
  ASSERT_EQ(b.cfg->channels.rules().size(), a.cfg->channels.rules().size());
  for (std::size_t i = 0; i < a.cfg->channels.rules().size(); ++i) {
    const auto &ra = a.cfg->channels.rules()[i], &rb = b.cfg->channels.rules()[i];
    EXPECT_EQ(ra.pattern, rb.pattern);
    EXPECT_EQ(ra.history_size, rb.history_size);
    EXPECT_EQ(ra.history_ttl, rb.history_ttl);
    EXPECT_EQ(ra.presence, rb.presence);
  }
  // And printing the printed file gives the same text but for the sources and the file's name.
  const auto again = parse({"--config", write(printed.out, "printed.toml"), "--print-config"});
  auto strip = [](std::string s) {
    std::string out;
    std::size_t pos = 0;
    while (pos < s.size()) {
      auto end = s.find('\n', pos);
      if (end == std::string::npos) end = s.size();
      auto line = s.substr(pos, end - pos);
      if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
      pos = end + 1;
    }
    return out;
  };
  EXPECT_EQ(strip(again.out), strip(printed.out));
}

TEST(config, print_config_without_rules_has_no_channels) {
  scoped_env env;
  const auto o = parse({"--print-config"});
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out.find("channels"), std::string::npos) << o.out;
  for (const auto* key : {"history_size = 0", "history_ttl = 300", "history_memory_limit = 268435456",
                          "presence = false", "presence_ttl = 60"})
    EXPECT_NE(o.out.find(key), std::string::npos) << key;
}

}  // namespace
}  // namespace bc::app
