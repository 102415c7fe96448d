#include "broker/redis_url.hpp"

#include <charconv>
#include <stdexcept>

#include "util/hex.hpp"

namespace bc::broker {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

[[noreturn]] void bad(std::string_view url, std::string_view why) {
  throw std::invalid_argument("invalid REDIS_URL entry '" + redact_redis_url(url) + "': " + std::string(why));
}

std::string percent_decode(std::string_view s, std::string_view url) {
  auto out = util::percent_decode(s);
  if (!out) bad(url, "bad percent-encoding");
  return std::move(*out);
}

int parse_int(std::string_view s, int min, int max, std::string_view url, std::string_view what) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < min || v > max) {
    bad(url,
        std::string(what) + " must be a number from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return v;
}

constexpr std::string_view sentinel_scheme = "redis+sentinel://";
constexpr std::string_view tls_sentinel_scheme = "rediss+sentinel://";
constexpr std::string_view cluster_scheme = "redis+cluster://";
constexpr std::string_view tls_cluster_scheme = "rediss+cluster://";

// The length of a cluster scheme `s` starts with, else 0.
std::size_t cluster_prefix(std::string_view s) {
  if (s.substr(0, cluster_scheme.size()) == cluster_scheme) return cluster_scheme.size();
  if (s.substr(0, tls_cluster_scheme.size()) == tls_cluster_scheme) return tls_cluster_scheme.size();
  return 0;
}

// The length of a sentinel scheme `s` starts with, else 0.
std::size_t sentinel_prefix(std::string_view s) {
  if (s.substr(0, sentinel_scheme.size()) == sentinel_scheme) return sentinel_scheme.size();
  if (s.substr(0, tls_sentinel_scheme.size()) == tls_sentinel_scheme) return tls_sentinel_scheme.size();
  return 0;
}

// `host[:port]` or `[v6]:port`.
void parse_host_port(std::string_view rest, std::string& host, int& port, std::string_view url) {
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) bad(url, "unclosed '[' in host");
    host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') bad(url, "unexpected text after ']'");
      port_text = rest.substr(1);
    }
  } else {
    auto colon = rest.find(':');
    host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
  }
  if (host.empty()) bad(url, "missing host");
  if (!port_text.empty()) port = parse_int(port_text, 1, 65535, url, "port");
}

// Takes `[user:]password@` off the front of `rest`.
void parse_userinfo(std::string_view& rest, redis_endpoint& ep, std::string_view url) {
  auto at = rest.rfind('@');
  if (at == std::string_view::npos) return;
  auto userinfo = rest.substr(0, at);
  rest.remove_prefix(at + 1);
  auto colon = userinfo.find(':');
  if (colon == std::string_view::npos) {
    ep.password = percent_decode(userinfo, url);  // redis://secret@host: the common short form
  } else {
    ep.username = percent_decode(userinfo.substr(0, colon), url);
    ep.password = percent_decode(userinfo.substr(colon + 1), url);
  }
}

redis_endpoint parse_one(std::string_view url) {
  redis_endpoint ep;
  std::string_view rest = url;
  if (auto scheme = rest.find("://"); scheme != std::string_view::npos) {
    const auto name = rest.substr(0, scheme);
    if (name != "redis" && name != "rediss") {
      bad(url,
          "only redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// and "
          "rediss+cluster:// are "
          "supported");
    }
    ep.tls = name == "rediss";
    rest.remove_prefix(scheme + 3);
  }
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    auto db = rest.substr(slash + 1);
    if (!db.empty()) ep.db = parse_int(db, 0, 1 << 20, url, "db");
    rest = rest.substr(0, slash);
  }
  parse_userinfo(rest, ep, url);
  parse_host_port(rest, ep.host, ep.port, url);
  return ep;
}

redis_endpoint parse_sentinel(std::string_view url) {
  redis_endpoint ep;
  ep.tls = url.substr(0, tls_sentinel_scheme.size()) == tls_sentinel_scheme;
  std::string_view rest = url.substr(sentinel_prefix(url));
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) bad(url, "missing '/<master name>' after the sentinels");
  std::string_view path = rest.substr(slash + 1);
  rest = rest.substr(0, slash);
  const auto db_slash = path.find('/');
  ep.master_name = percent_decode(path.substr(0, db_slash), url);
  if (ep.master_name.empty()) bad(url, "missing the master name after the sentinels");
  if (db_slash != std::string_view::npos && db_slash + 1 < path.size()) {
    ep.db = parse_int(path.substr(db_slash + 1), 0, 1 << 20, url, "db");
  }
  parse_userinfo(rest, ep, url);
  while (true) {
    const auto comma = rest.find(',');
    redis_host h;
    parse_host_port(rest.substr(0, comma), h.host, h.port, url);
    ep.sentinels.push_back(std::move(h));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return ep;
}

redis_endpoint parse_cluster(std::string_view url) {
  redis_endpoint ep;
  ep.tls = url.substr(0, tls_cluster_scheme.size()) == tls_cluster_scheme;
  std::string_view rest = url.substr(cluster_prefix(url));
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    auto db = rest.substr(slash + 1);
    if (!db.empty()) ep.db = parse_int(db, 0, 1 << 20, url, "db");
    rest = rest.substr(0, slash);
  }
  parse_userinfo(rest, ep, url);
  while (true) {
    const auto comma = rest.find(',');
    redis_host h;
    h.port = 6379;
    parse_host_port(trim(rest.substr(0, comma)), h.host, h.port, url);
    ep.cluster_seeds.push_back(std::move(h));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return ep;
}

}  // namespace

std::string redis_endpoint::address() const {
  if (!cluster_seeds.empty()) return "cluster";
  if (!sentinels.empty()) return "sentinel/" + master_name;
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string redact_redis_url(std::string_view url) {
  const auto scheme = url.find("://");
  const auto start = scheme == std::string_view::npos ? 0 : scheme + 3;
  // The last '@' anywhere, not only before the path: a password with an unencoded '/' is still hidden.
  const auto at = url.rfind('@');
  if (at == std::string_view::npos || at < start) return std::string(url);
  const auto colon = url.find(':', start);
  const auto from = colon != std::string_view::npos && colon < at ? colon + 1 : start;
  return std::string(url.substr(0, from)) + "********" + std::string(url.substr(at));
}

std::vector<redis_endpoint> parse_redis_urls(std::string_view list) {
  std::vector<redis_endpoint> out;
  if (list.find("+cluster://") != std::string_view::npos) {
    // The seeds' commas are the entry's own: a cluster is the whole REDIS_URL.
    const auto item = trim(list);
    if (cluster_prefix(item) == 0 || item.find("+cluster://", 8) != std::string_view::npos) {
      throw std::invalid_argument("invalid REDIS_URL: a redis+cluster:// URL must be the only entry (got '" +
                                  redact_redis_url(item) + "')");
    }
    out.push_back(parse_cluster(item));
    return out;
  }
  while (true) {
    // A sentinel entry holds commas of its own: its list of sentinels runs up to the '/' of its master name.
    const auto lead = trim(list);
    auto from = std::size_t{0};
    if (const auto n = sentinel_prefix(lead); n != 0) {
      from = list.find('/', list.find("://") + 3);
      if (from == std::string_view::npos) from = list.size();
    }
    auto comma = list.find(',', from);
    auto item = trim(list.substr(0, comma));
    if (item.empty()) {
      throw std::invalid_argument("invalid REDIS_URL: entry " + std::to_string(out.size() + 1) +
                                  " is empty (entries are separated by commas)");
    }
    out.push_back(sentinel_prefix(item) != 0 ? parse_sentinel(item) : parse_one(item));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace bc::broker
