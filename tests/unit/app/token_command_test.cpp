#include "app/token_command.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "auth/base64url.hpp"
#include "auth/jwt_signer.hpp"
#include "auth/jwt_verifier.hpp"

namespace bc::app {
namespace {

constexpr const char* secret = "token-test-secret-0123456789abcdef-0123";

boost::json::object payload_of(const std::string& token) {
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  std::string json;
  EXPECT_TRUE(auth::base64url_decode(token.substr(first + 1, second - first - 1), json)) << token;
  return boost::json::parse(json).as_object();
}

// Runs `broadcaster token ARGS...` in-process, with JWT_SECRET and CONFIG unset unless `env` sets them.
struct run_result {
  int code;
  std::string out, err;
};
run_result run(std::vector<std::string> args) {
  args.insert(args.begin(), "token");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  const int code = run_token_command(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

class TokenCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("JWT_SECRET");
    ::unsetenv("CONFIG");
  }
  void TearDown() override { SetUp(); }
};

TEST(ParseTtl, SecondsOrAUnit) {
  EXPECT_EQ(parse_ttl("90"), 90);
  EXPECT_EQ(parse_ttl("90s"), 90);
  EXPECT_EQ(parse_ttl("15m"), 900);
  EXPECT_EQ(parse_ttl("1h"), 3600);
  EXPECT_EQ(parse_ttl("7d"), 7 * 86400);
  for (const char* bad :
       {"", "h", "0", "0h", "-5", "1.5h", "1w", "1hh", " 1h", "1h ", "99999999999999999999"}) {
    EXPECT_EQ(parse_ttl(bad), std::nullopt) << bad;
  }
}

TEST(TokenPayload, HoldsTheClaimsTheServerChecks) {
  const token_request r{
      "alice", {"news", "chat:lobby"}, {"subscribe", "publish"}, 3600, R"({"name":"Alice"})"};
  const auto p = boost::json::parse(token_payload(r, 1'700'000'000)).as_object();
  EXPECT_EQ(p.at("sub"), "alice");
  EXPECT_EQ(p.at("aud"), "broadcaster");
  EXPECT_EQ(p.at("iat"), 1'700'000'000);
  EXPECT_EQ(p.at("exp"), 1'700'003'600);
  EXPECT_EQ(p.at("authorizedChannels"), boost::json::parse(R"(["news","chat:lobby"])"));
  EXPECT_EQ(p.at("scope"), boost::json::parse(R"(["subscribe","publish"])"));
  EXPECT_EQ(p.at("info"), boost::json::parse(R"({"name":"Alice"})"));
  EXPECT_FALSE(boost::json::parse(token_payload({"bob", {"x"}, {"subscribe"}, 60, {}}, 0))
                   .as_object()
                   .contains("info"));
}

TEST(CheckRequest, RefusesWhatTheServerWouldRefuse) {
  const token_request good{"alice", {"news"}, {"subscribe"}, 60, {}};
  EXPECT_EQ(check_request(good), std::nullopt);
  auto with = [&](auto change) {
    auto r = good;
    change(r);
    return check_request(r);
  };
  EXPECT_NE(with([](token_request& r) { r.sub.clear(); }), std::nullopt);
  EXPECT_NE(with([](token_request& r) { r.channels.clear(); }), std::nullopt);
  EXPECT_NE(with([](token_request& r) { r.channels.push_back(""); }), std::nullopt);
  EXPECT_NE(with([](token_request& r) { r.scope = {"subscribe", "admin"}; }), std::nullopt);
  EXPECT_NE(with([](token_request& r) { r.info_json = "[1]"; }), std::nullopt);
  EXPECT_NE(with([](token_request& r) { r.info_json = "{"; }), std::nullopt);
  EXPECT_EQ(with([](token_request& r) { r.scope.clear(); }), std::nullopt);  // a token for presence only
}

TEST_F(TokenCommand, PrintsATokenTheServerAccepts) {
  const auto r = run({"--sub", "alice", "--channels", "news,chat:lobby", "--scope", "subscribe,publish",
                      "--ttl", "1h", "--info", R"({"name":"Alice"})", "--jwt-secret", secret});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.back(), '\n');
  const std::string token = r.out.substr(0, r.out.size() - 1);
  const auto payload = payload_of(token);
  const auto iat = payload.at("iat").as_int64();
  EXPECT_EQ(payload.at("exp").as_int64(), iat + 3600);
  EXPECT_EQ(payload.at("info"), boost::json::parse(R"({"name":"Alice"})"));

  const auto verified = auth::jwt_verifier(secret).verify(token, iat);
  ASSERT_TRUE(verified.ok()) << verified.message;
  EXPECT_EQ(verified.claims.sub, "alice");
  EXPECT_EQ(verified.claims.authorized_channels, (std::vector<std::string>{"chat:lobby", "news"}));
  EXPECT_TRUE(verified.claims.can_subscribe);
  EXPECT_TRUE(verified.claims.can_publish);
  EXPECT_FALSE(auth::jwt_verifier("another-secret-0123456789abcdef-0123").verify(token, iat).ok());
}

TEST_F(TokenCommand, DefaultsToSubscribeForAnHour) {
  const auto r = run({"--sub", "bob", "--channels", "news", "--jwt-secret", secret});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto payload = payload_of(r.out.substr(0, r.out.size() - 1));
  EXPECT_EQ(payload.at("scope"), boost::json::parse(R"(["subscribe"])"));
  EXPECT_EQ(payload.at("exp").as_int64() - payload.at("iat").as_int64(), 3600);
}

TEST_F(TokenCommand, ReadsTheSecretLikeTheServerFlagThenEnvironmentThenFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("bc-token-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = (dir / "broadcaster.toml").string();
  std::ofstream(file)
      << "port = 8000\njwt_secret = \"file-secret-0123456789abcdef-0123456\"\napi_keys = [\"k\"]\n";
  auto secret_used = [](const run_result& r) -> std::string {
    EXPECT_EQ(r.code, 0) << r.err;
    const auto token = r.out.substr(0, r.out.size() - 1);
    const auto iat = payload_of(token).at("iat").as_int64();
    for (const char* s : {"flag-secret-0123456789abcdef-01234567", "env-secret-0123456789abcdef-012345678",
                          "file-secret-0123456789abcdef-0123456"}) {
      if (auth::jwt_verifier(s).verify(token, iat).ok()) return s;
    }
    return "none";
  };
  const std::vector<std::string> claims{"--sub", "a", "--channels", "c"};
  auto with = [&](std::vector<std::string> extra) {
    auto args = claims;
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
  };
  EXPECT_EQ(secret_used(with({"--config", file})), "file-secret-0123456789abcdef-0123456");
  ::setenv("CONFIG", file.c_str(), 1);
  EXPECT_EQ(secret_used(with({})), "file-secret-0123456789abcdef-0123456");
  ::setenv("JWT_SECRET", "env-secret-0123456789abcdef-012345678", 1);
  EXPECT_EQ(secret_used(with({})), "env-secret-0123456789abcdef-012345678");
  EXPECT_EQ(secret_used(with({"--jwt-secret", "flag-secret-0123456789abcdef-01234567"})),
            "flag-secret-0123456789abcdef-01234567");
  std::filesystem::remove_all(dir);
}

TEST_F(TokenCommand, WithoutASecretItSaysWhichSettingAndExits2) {
  const auto r = run({"--sub", "alice", "--channels", "news"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("JWT_SECRET"), std::string::npos) << r.err;
}

TEST_F(TokenCommand, BadArgumentsExit2WithOneLine) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--channels", "news", "--jwt-secret", secret},  // no --sub
           {"--sub", "a", "--jwt-secret", secret},          // no --channels
           {"--sub", "a", "--channels", "n", "--ttl", "soon", "--jwt-secret", secret},
           {"--sub", "a", "--channels", "n", "--scope", "admin", "--jwt-secret", secret},
           {"--sub", "a", "--channels", "n", "--info", "not json", "--jwt-secret", secret},
           {"--sub", "a", "--channels", "n", "--config", "/nonexistent/broadcaster.toml"},
       }) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 2) << args.back();
    EXPECT_EQ(r.out, "") << args.back();
    EXPECT_FALSE(r.err.empty()) << args.back();
  }
}

TEST_F(TokenCommand, AWeakSecretStillSignsButWarns) {
  const auto r = run({"--sub", "a", "--channels", "n", "--jwt-secret", "hunter2"});
  EXPECT_EQ(r.code, 0);
  EXPECT_FALSE(r.out.empty());
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("hunter2"), std::string::npos) << "the secret itself is never printed: " << r.err;
}

TEST_F(TokenCommand, HelpGoesToStdoutAndExits0) {
  const auto r = run({"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* flag : {"--sub", "--channels", "--scope", "--ttl", "--info", "--jwt-secret", "--config"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

}  // namespace
}  // namespace bc::app
