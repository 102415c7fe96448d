#pragma once
// Redis Cluster key slots and topology answers: which of the 16384 slots a channel's keys and sharded Pub/Sub
// channel live in, and who serves which slots (CLUSTER SHARDS / CLUSTER SLOTS). Pure functions, no I/O.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct redisReply;

namespace bc::broker {

struct redis_options;

namespace redis_cluster_slots {

constexpr std::uint16_t slot_count = 16384;

// CRC16-CCITT (XModem: polynomial 0x1021, initial 0), the Redis Cluster key hash. crc16("123456789") =
// 0x31C3.
std::uint16_t crc16(std::string_view data);

// The slot of a key or sharded channel name: crc16 of its hash tag — the text between the first '{' and the
// first '}' after it, when that is not empty — else of the whole name, modulo 16384.
std::uint16_t slot_of(std::string_view key);

// The text a channel's keys and Pub/Sub name carry in braces: the channel name itself, with '%', '{' and '}'
// percent-encoded (%25, %7B, %7D). Valid channel names contain none of them, so the tag is the name (and the
// keys stay the names nodes of every version use); for a name that did, it keeps every name of the channel
// in one slot: a '}' inside the tag would end it early, and an empty tag would hash the whole name.
std::string channel_tag(std::string_view channel);
std::string channel_of_tag(std::string_view tag);  // the inverse

// The slot of a (non-empty) channel: the one its keys (redis_scripts.hpp) and, in cluster mode, its Pub/Sub
// channel hash to.
std::uint16_t channel_slot(std::string_view channel);

// Broadcaster channel C as a Redis Pub/Sub channel: `prefix C` (PUBLISH / SUBSCRIBE), or in cluster mode
// `prefix{tag}` (SPUBLISH / SSUBSCRIBE: a sharded channel must live in a slot, the same one as C's keys).
std::string pubsub_channel(const redis_options& opts, std::string_view channel);
// The Broadcaster channel of a Pub/Sub channel name made by pubsub_channel (empty if it is not one).
std::string channel_of_pubsub(const redis_options& opts, std::string_view redis_channel);

// One primary and the slots it serves (inclusive ranges).
struct node_slots {
  std::string host;
  int port = 0;
  std::string id;  // node id when known (CLUSTER SHARDS), else empty
  std::vector<std::pair<std::uint16_t, std::uint16_t>> ranges;
  std::string address() const;  // host:port ([v6]:port)
};

// Parse the answers into one entry per primary that serves at least one slot, its ranges merged. An empty
// host means "the node you asked" (Redis answers so when it does not know its own address); a primary whose
// endpoint is unknown ("?") is left out. False when the reply is not what the command answers. With `tls`
// (rediss+cluster://) a node's port is its TLS port: CLUSTER SHARDS names it `tls-port` (`port` is the plain
// one, absent on a TLS-only node); CLUSTER SLOTS answers a TLS connection with TLS ports already.
bool parse_cluster_slots(const redisReply* r, std::vector<node_slots>& out);
bool parse_cluster_shards(const redisReply* r, std::vector<node_slots>& out, bool tls = false);

}  // namespace redis_cluster_slots
}  // namespace bc::broker
