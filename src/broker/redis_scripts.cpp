#include "broker/redis_scripts.hpp"

namespace bc::broker::redis_scripts {

std::string meta_key(std::string_view prefix, std::string_view channel) {
  std::string k;
  k.reserve(prefix.size() + channel.size() + 7);
  k.append(prefix).append("{").append(channel).append("}:meta");
  return k;
}

std::string stream_key(std::string_view prefix, std::string_view channel) {
  std::string k;
  k.reserve(prefix.size() + channel.size() + 9);
  k.append(prefix).append("{").append(channel).append("}:stream");
  return k;
}

// Lua 5.1 numbers are doubles: offsets are exact up to 2^53. string.format('%d') keeps them out of exponent
// notation. The envelope's epoch length is one byte (epochs are 1..127 bytes), the offset digits' too.
const char* const publish = R"lua(
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch)
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

}  // namespace bc::broker::redis_scripts
