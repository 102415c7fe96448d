#include "broker/redis_cluster_slots.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>

#include "broker/redis_options.hpp"

namespace bc::broker::redis_cluster_slots {

namespace {

std::string_view text(const redisReply* r) {
  return (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? std::string_view(r->str, r->len)
                                                                          : std::string_view();
}

bool is_text(const redisReply* r) {
  return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

bool integer(const redisReply* r, long long& v) {
  if (r->type == REDIS_REPLY_INTEGER) {
    v = r->integer;
    return true;
  }
  if (!is_text(r) || r->len == 0 || r->len > 18) return false;
  v = 0;
  for (std::size_t i = 0; i < r->len; ++i) {
    if (r->str[i] < '0' || r->str[i] > '9') return false;
    v = v * 10 + (r->str[i] - '0');
  }
  return true;
}

bool slot_range(const redisReply* a, const redisReply* b, std::pair<std::uint16_t, std::uint16_t>& out) {
  long long first = 0, last = 0;
  if (!integer(a, first) || !integer(b, last) || first < 0 || last < first || last >= slot_count)
    return false;
  out = {static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last)};
  return true;
}

// Adds `ranges` to the entry of host:port (one per primary), creating it.
void add(std::vector<node_slots>& out, std::string host, int port, std::string id,
         const std::vector<std::pair<std::uint16_t, std::uint16_t>>& ranges) {
  auto it = std::find_if(out.begin(), out.end(),
                         [&](const node_slots& n) { return n.host == host && n.port == port; });
  if (it == out.end()) {
    out.push_back({std::move(host), port, std::move(id), {}});
    it = out.end() - 1;
  }
  it->ranges.insert(it->ranges.end(), ranges.begin(), ranges.end());
}

// A RESP2 map: a flat array key, value, key, value...
const redisReply* field(const redisReply* map, std::string_view key) {
  if (map->type != REDIS_REPLY_ARRAY) return nullptr;
  for (std::size_t i = 0; i + 1 < map->elements; i += 2) {
    if (text(map->element[i]) == key) return map->element[i + 1];
  }
  return nullptr;
}

}  // namespace

std::uint16_t crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (unsigned char c : data) {
    crc ^= static_cast<std::uint16_t>(c << 8);
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::uint16_t slot_of(std::string_view key) {
  const auto open = key.find('{');
  if (open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return crc16(key) & (slot_count - 1);
}

std::string channel_tag(std::string_view channel) {
  std::string out;
  out.reserve(channel.size());
  for (char c : channel) {
    if (c == '%') {
      out += "%25";
    } else if (c == '{') {
      out += "%7B";
    } else if (c == '}') {
      out += "%7D";
    } else {
      out += c;
    }
  }
  return out;
}

std::string channel_of_tag(std::string_view tag) {
  std::string out;
  out.reserve(tag.size());
  for (std::size_t i = 0; i < tag.size(); ++i) {
    if (tag[i] == '%' && i + 2 < tag.size()) {
      const auto code = tag.substr(i + 1, 2);
      if (code == "25" || code == "7B" || code == "7D") {
        out += code == "25" ? '%' : code == "7B" ? '{' : '}';
        i += 2;
        continue;
      }
    }
    out += tag[i];
  }
  return out;
}

std::uint16_t channel_slot(std::string_view channel) {
  return crc16(channel_tag(channel)) & (slot_count - 1);
}

std::string pubsub_channel(const redis_options& opts, std::string_view channel) {
  std::string out = opts.channel_prefix;
  if (!opts.cluster) return out.append(channel);
  return out.append("{").append(channel_tag(channel)).append("}");
}

std::string channel_of_pubsub(const redis_options& opts, std::string_view redis_channel) {
  const std::string_view prefix = opts.channel_prefix;
  if (redis_channel.substr(0, prefix.size()) != prefix) return {};
  redis_channel.remove_prefix(prefix.size());
  if (!opts.cluster) return std::string(redis_channel);
  if (redis_channel.size() < 2 || redis_channel.front() != '{' || redis_channel.back() != '}') return {};
  return channel_of_tag(redis_channel.substr(1, redis_channel.size() - 2));
}

std::string node_slots::address() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// [[start, end, [host, port, id?, ...], [replica]...], ...]
bool parse_cluster_slots(const redisReply* r, std::vector<node_slots>& out) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return false;
  for (std::size_t i = 0; i < r->elements; ++i) {
    const redisReply* e = r->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3) return false;
    std::pair<std::uint16_t, std::uint16_t> range;
    if (!slot_range(e->element[0], e->element[1], range)) return false;
    const redisReply* primary = e->element[2];
    long long port = 0;
    if (primary->type != REDIS_REPLY_ARRAY || primary->elements < 2 ||
        (!is_text(primary->element[0]) && primary->element[0]->type != REDIS_REPLY_NIL) ||
        !integer(primary->element[1], port) || port < 0 || port > 65535) {
      return false;
    }
    const std::string_view host =
        primary->element[0]->type == REDIS_REPLY_NIL ? "" : text(primary->element[0]);
    if (host == "?") continue;
    std::string id =
        primary->elements >= 3 && is_text(primary->element[2]) ? std::string(text(primary->element[2])) : "";
    add(out, std::string(host), static_cast<int>(port), std::move(id), {range});
  }
  return true;
}

// [{"slots": [s, e, s, e...], "nodes": [{"id": .., "port": .., "ip": .., "endpoint": .., "role": ..}...]}...]
bool parse_cluster_shards(const redisReply* r, std::vector<node_slots>& out, bool tls) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return false;
  for (std::size_t i = 0; i < r->elements; ++i) {
    const redisReply* shard = r->element[i];
    const redisReply* slots = field(shard, "slots");
    const redisReply* nodes = field(shard, "nodes");
    if (slots == nullptr || nodes == nullptr || slots->type != REDIS_REPLY_ARRAY ||
        nodes->type != REDIS_REPLY_ARRAY || slots->elements % 2 != 0) {
      return false;
    }
    if (slots->elements == 0) continue;  // a shard without slots (a new, empty primary)
    std::vector<std::pair<std::uint16_t, std::uint16_t>> ranges;
    for (std::size_t k = 0; k < slots->elements; k += 2) {
      std::pair<std::uint16_t, std::uint16_t> range;
      if (!slot_range(slots->element[k], slots->element[k + 1], range)) return false;
      ranges.push_back(range);
    }
    // The primary; with several (a failed one not yet known as a replica), the one that is online.
    const redisReply* primary = nullptr;
    for (std::size_t n = 0; n < nodes->elements; ++n) {
      const redisReply* node = nodes->element[n];
      const redisReply* role = field(node, "role");
      if (role == nullptr || text(role) != "master") continue;
      const redisReply* health = field(node, "health");
      if (primary == nullptr || (health != nullptr && text(health) == "online")) primary = node;
    }
    if (primary == nullptr) continue;
    const redisReply* port = field(primary, tls ? "tls-port" : "port");
    const redisReply* endpoint = field(primary, "endpoint");
    const redisReply* ip = field(primary, "ip");
    const redisReply* id = field(primary, "id");
    long long p = 0;
    if (port == nullptr || !integer(port, p) || p < 0 || p > 65535) return false;
    std::string_view host = endpoint != nullptr ? text(endpoint) : "";
    if ((host.empty() || host == "?") && ip != nullptr) host = text(ip);
    if (host == "?") continue;
    add(out, std::string(host), static_cast<int>(p), id != nullptr ? std::string(text(id)) : "", ranges);
  }
  return true;
}

}  // namespace bc::broker::redis_cluster_slots
