#pragma once
// `broadcaster token`: mints a client JWT (HS256) signed with the server's own secret, so that a backend, a
// script or a new user gets a token without writing JWT code. The secret is read the way the server reads it:
// --jwt-secret, else JWT_SECRET, else `jwt_secret` in the TOML file named by --config or CONFIG.

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace bc::app {

// The claims of one token.
struct token_request {
  std::string sub;
  std::vector<std::string> channels;               // authorizedChannels
  std::vector<std::string> scope = {"subscribe"};  // subscribe and/or publish
  std::int64_t ttl_s = 3600;                       // exp = iat + ttl_s
  std::string info_json;                           // the `info` claim as JSON text; empty = none
};

// A lifetime: a whole number of seconds, or one followed by s, m, h or d ("90", "15m", "1h", "7d"). Nothing
// for anything else, zero or a negative number included.
std::optional<std::int64_t> parse_ttl(std::string_view text);

// The token's payload JSON: sub, aud "broadcaster", iat = now_s, exp, authorizedChannels, scope and, when
// given, info (inserted as it is: check it with check_request first).
std::string token_payload(const token_request& request, std::int64_t now_s);

// Why the request cannot make a token the server accepts (empty sub or channel list, an unknown scope, info
// that is not a JSON object), or nothing.
std::optional<std::string> check_request(const token_request& request);

// Runs the subcommand on the arguments after "token" (argv[0] is the program). Prints the token and a newline
// on `out`; a usage error or a missing secret is one line on `err` and exit code 2, like the server's
// configuration errors; --help prints the usage on `out` and returns 0.
int run_token_command(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace bc::app
