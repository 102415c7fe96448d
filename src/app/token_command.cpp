#include "app/token_command.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <limits>
#include <utility>

#include "app/secret_strength.hpp"
#include "auth/jwt_signer.hpp"
#include "protocol/encoder.hpp"
#include "protocol/time_format.hpp"

namespace bc::app {

namespace {

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& i : items) out += (out.size() > 1 ? "," : "") + protocol::json_quote(i);
  return out + "]";
}

// `jwt_secret` from the TOML file, as the server reads it; an empty value counts as unset there too.
std::string secret_from_file(const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw std::runtime_error("config file " + path + ": " + std::string(e.description()));
  }
  const auto* node = table.get("jwt_secret");
  if (node == nullptr) return {};
  const auto value = node->value<std::string>();
  if (!value) throw std::runtime_error("config file " + path + ": jwt_secret must be a string");
  return *value;
}

}  // namespace

std::optional<std::int64_t> parse_ttl(std::string_view text) {
  constexpr std::pair<char, std::int64_t> units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
  std::int64_t unit = 1;
  for (const auto& [suffix, seconds] : units) {
    if (text.empty() || text.back() != suffix) continue;
    unit = seconds;
    text.remove_suffix(1);
    break;
  }
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || n <= 0) return std::nullopt;
  if (n > std::numeric_limits<std::int64_t>::max() / unit / 2)
    return std::nullopt;  // keeps exp far from overflow
  return n * unit;
}

std::string token_payload(const token_request& r, std::int64_t now_s) {
  std::string out = "{\"sub\":" + protocol::json_quote(r.sub) +
                    ",\"aud\":\"broadcaster\",\"iat\":" + std::to_string(now_s) +
                    ",\"exp\":" + std::to_string(now_s + r.ttl_s) +
                    ",\"authorizedChannels\":" + json_list(r.channels) + ",\"scope\":" + json_list(r.scope);
  if (!r.info_json.empty()) out += ",\"info\":" + r.info_json;
  return out + "}";
}

std::optional<std::string> check_request(const token_request& r) {
  if (r.sub.empty()) return "--sub must not be empty";
  if (r.channels.empty()) return "--channels needs at least one channel";
  if (std::any_of(r.channels.begin(), r.channels.end(), [](const std::string& c) { return c.empty(); }))
    return "--channels: empty channel name";
  for (const auto& s : r.scope) {
    if (s != "subscribe" && s != "publish") return "--scope: '" + s + "' is neither subscribe nor publish";
  }
  if (!r.info_json.empty()) {
    boost::system::error_code ec;
    const auto info = boost::json::parse(r.info_json, ec);
    if (ec || !info.is_object()) return "--info must be a JSON object";
  }
  if (r.ttl_s <= 0) return "--ttl must be positive";
  return std::nullopt;
}

int run_token_command(int argc, char** argv, std::ostream& out, std::ostream& err) {
  token_request r;
  std::string ttl = "1h", secret, config_file;
  CLI::App app{
      "Prints a client JWT (HS256) for Broadcaster, signed with the server's secret: --jwt-secret, else\n"
      "JWT_SECRET, else jwt_secret in the --config (CONFIG) file, as the server reads it.\n"
      "Example: broadcaster token --sub alice --channels news,chat:lobby --scope subscribe,publish --ttl 1h",
      "broadcaster token"};
  app.add_option("--sub", r.sub, "The user: the token's sub claim")->required();
  app.add_option("--channels", r.channels, "Comma-separated channels the token authorizes")
      ->required()
      ->delimiter(',');
  app.add_option("--scope", r.scope, "Comma-separated: subscribe, publish")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--ttl", ttl, "Lifetime: seconds, or a number with s, m, h or d")->capture_default_str();
  app.add_option("--info", r.info_json, "A JSON object for the info claim (passed to other clients as-is)");
  app.add_option("--jwt-secret", secret, "HS256 secret, as the server's")->envname("JWT_SECRET");
  app.add_option("--config", config_file, "TOML configuration file to read jwt_secret from")
      ->envname("CONFIG");

  auto fail = [&](const std::string& line) {
    err << "broadcaster token: " << line << "\n";
    return 2;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err) == 0 ? 0 : 2;
  }
  const auto ttl_s = parse_ttl(ttl);
  if (!ttl_s) return fail("--ttl '" + ttl + "': expected seconds, or a number with s, m, h or d (1h)");
  r.ttl_s = *ttl_s;
  if (auto problem = check_request(r)) return fail(*problem);
  try {
    if (secret.empty() && !config_file.empty()) secret = secret_from_file(config_file);
  } catch (const std::runtime_error& e) {
    return fail(e.what());
  }
  if (secret.empty())
    return fail("JWT_SECRET is required (set JWT_SECRET, --jwt-secret or jwt_secret in the --config file)");
  for (const auto& warning : weak_secret_warnings(secret, {}))
    err << "broadcaster token: warning: " << warning << "\n";
  out << auth::sign_hs256(secret, token_payload(r, protocol::now_unix_ms() / 1000)) << "\n";
  return 0;
}

}  // namespace bc::app
