#include "broker/redis_scripts.hpp"

#include <unordered_map>

#include "broker/redis_cluster_slots.hpp"

namespace bc::broker::redis_scripts {

namespace {
// The tag is the channel name for every valid name; redis_cluster_slots::channel_tag escapes the braces of
// one that is not, so that every key of a channel hashes to one cluster slot.
std::string channel_key(std::string_view prefix, std::string_view channel, std::string_view suffix) {
  std::string k;
  k.reserve(prefix.size() + channel.size() + suffix.size() + 2);
  k.append(prefix).append("{").append(redis_cluster_slots::channel_tag(channel)).append("}").append(suffix);
  return k;
}
}  // namespace

std::string meta_key(std::string_view prefix, std::string_view channel) {
  return channel_key(prefix, channel, ":meta");
}

std::string stream_key(std::string_view prefix, std::string_view channel) {
  return channel_key(prefix, channel, ":stream");
}

std::string presence_expiry_key(std::string_view prefix, std::string_view channel) {
  return channel_key(prefix, channel, ":presence:expiry");
}

std::string presence_members_key(std::string_view prefix, std::string_view channel) {
  return channel_key(prefix, channel, ":presence:members");
}

std::string presence_users_key(std::string_view prefix, std::string_view channel) {
  return channel_key(prefix, channel, ":presence:users");
}

// Lua 5.1 numbers are doubles: offsets are exact up to 2^53. string.format('%d') keeps them out of exponent
// notation. The envelope's epoch length is one byte (epochs are 1..127 bytes), the offset digits' too.
const char* const publish = R"lua(
local rid = ARGV[7] or ''
local rid2 = ARGV[8] or ''
local m = redis.call('HMGET', KEYS[1], 'e', 'r')
local epoch = m[1]
if epoch and rid ~= '' and m[2] and m[2] ~= rid and (rid2 == '' or m[2] == rid2) then
  epoch = false
end
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end
if rid ~= '' and m[2] ~= rid then
  redis.call('HSET', KEYS[1], 'r', rid)
end
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local o = string.format('%d', offset)
local env = '\188\2' .. string.char(#epoch) .. epoch .. string.char(#o) .. o .. ARGV[6]
if tonumber(ARGV[3]) > 0 then
  local t = redis.call('TIME')
  local ms = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], o .. '-0', 'm', env, 't', ms)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
redis.call('PUBLISH', ARGV[1], env)
return offset
)lua";

const char* const read = R"lua(
local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local m = redis.call('HMGET', KEYS[1], 'e', 'o')
local epoch, top = m[1], m[2]
if not epoch then
  epoch = ARGV[1]
  top = '0'
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not top then top = '0' end
local count = tonumber(ARGV[6])
if count == 0 then return {epoch, top, now} end
if ARGV[3] == 'n' then
  return {epoch, top, now, redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', count)}
end
local first = tonumber(ARGV[5])
if ARGV[4] ~= epoch then
  if ARGV[3] ~= 'A' then return {epoch, top, now} end
  first = 1
end
local window = tonumber(ARGV[7])
if window > 0 and tonumber(top) - window + 1 > first then first = tonumber(top) - window + 1 end
return {epoch, top, now, redis.call('XRANGE', KEYS[2], string.format('%d', first), '+', 'COUNT', count)}
)lua";

// What every presence script starts with. `field` reads one varint-length field of a member record (its
// client id, then its user); `now` is Redis's clock in unix ms, the one every expiry is judged by (nodes'
// clocks may differ; Redis's is the same for all of them). Scores and times go to Redis as '%d' strings:
// Lua would print a large number in exponent notation.
namespace {

const std::string presence_prelude = R"lua(
local function field(s, at)
  local n, mul = 0, 1
  while true do
    local b = string.byte(s, at)
    if not b then return nil, at end
    at = at + 1
    n = n + (b % 128) * mul
    if b < 128 then break end
    mul = mul * 128
  end
  return string.sub(s, at, at + n - 1), at + n
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- A join or leave is announced only while the channel has at most `jl` members, counting the one joining or
-- leaving (0: no limit): past it each one would be a frame to every member (channel_options::join_leave_limit).
local function within(jl, members)
  return jl == 0 or members <= jl
end
local function cleanup(limit, channel, leave, jl)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now), 'LIMIT', 0, limit)
  for _, id in ipairs(gone) do
    redis.call('ZREM', KEYS[1], id)
    local rec = redis.call('HGET', KEYS[2], id)
    if rec then
      redis.call('HDEL', KEYS[2], id)
      local _, at = field(rec, 1)
      local user = field(rec, at)
      if user and redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then redis.call('HDEL', KEYS[3], user) end
      if leave ~= '' and within(jl, redis.call('ZCARD', KEYS[1]) + 1) then
        redis.call('PUBLISH', channel, leave .. rec)
      end
    end
  end
end
)lua";

const std::string presence_add_source = presence_prelude + R"lua(
local ttl = tonumber(ARGV[1])
local jl = tonumber(ARGV[6])
cleanup(tonumber(ARGV[5]), ARGV[2], ARGV[4], jl)
local expires = string.format('%d', now + ttl)
local added = 0
for i = 7, #ARGV do
  local rec = ARGV[i]
  local id, at = field(rec, 1)
  local user = field(rec, at)
  if id and user and redis.call('ZADD', KEYS[1], expires, id) == 1 then
    added = added + 1
    redis.call('HSET', KEYS[2], id, rec)
    redis.call('HINCRBY', KEYS[3], user, 1)
    if ARGV[3] ~= '' and within(jl, redis.call('ZCARD', KEYS[1])) then
      redis.call('PUBLISH', ARGV[2], ARGV[3] .. rec)
    end
  end
end
for k = 1, 3 do
  if redis.call('PTTL', KEYS[k]) < ttl then redis.call('PEXPIRE', KEYS[k], ttl) end
end
return added
)lua";

const std::string presence_remove_source = presence_prelude + R"lua(
local jl = tonumber(ARGV[5])
cleanup(tonumber(ARGV[4]), ARGV[2], ARGV[3], jl)
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if rec then
  redis.call('HDEL', KEYS[2], ARGV[1])
  local _, at = field(rec, 1)
  local user = field(rec, at)
  if user and redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then redis.call('HDEL', KEYS[3], user) end
  if ARGV[3] ~= '' and within(jl, redis.call('ZCARD', KEYS[1]) + 1) then
    redis.call('PUBLISH', ARGV[2], ARGV[3] .. rec)
  end
end
return 1
)lua";

const std::string presence_read_source = presence_prelude + R"lua(
cleanup(tonumber(ARGV[5]), ARGV[3], ARGV[4], tonumber(ARGV[6]))
local live = '(' .. string.format('%d', now)
local n = redis.call('ZCOUNT', KEYS[1], live, '+inf')
if ARGV[1] == 's' then return {n, redis.call('HLEN', KEYS[3])} end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], live, '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i, id in ipairs(ids) do out[i] = redis.call('HGET', KEYS[2], id) end
return {n, out}
)lua";

}  // namespace

// Dynamically initialized (after the sources above, same file): read only once the broker runs.
const char* const presence_add = presence_add_source.c_str();
const char* const presence_remove = presence_remove_source.c_str();
const char* const presence_read = presence_read_source.c_str();

const char* sharded(const char* source) {
  // Built on first use (thread-safe static), once for all shards.
  static const std::unordered_map<const char*, std::string> variants = [] {
    std::unordered_map<const char*, std::string> v;
    for (const char* s : {publish, read, presence_add, presence_remove, presence_read}) {
      std::string text = s;
      const std::string from = "redis.call('PUBLISH'";
      for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
        text.replace(at, from.size(), "redis.call('SPUBLISH'");
        at += from.size();
      }
      v.emplace(s, std::move(text));
    }
    return v;
  }();
  const auto it = variants.find(source);
  return it == variants.end() ? source : it->second.c_str();
}

}  // namespace bc::broker::redis_scripts
