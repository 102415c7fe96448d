#pragma once
// The Lua scripts of the Redis broker and the keys they use: a channel's position and history live in Redis,
// changed only by these scripts, each one atomic (docs/redis.md "Channel positions and history").

#include <string>
#include <string_view>

namespace bc::broker::redis_scripts {

// Keys of Broadcaster channel C (prefix P = redis_options::channel_prefix), sharing the hash tag `{C}` so
// that a Redis Cluster keeps them in one slot:
//   P{C}:meta    hash: `e` the epoch, `o` the last offset given, `r` (Sentinel only) the replication id of
//   the
//                primary that gave it. Expires `position_ttl` after the last
//                publish (30 days by default), so positions survive idle periods.
//   P{C}:stream  stream: the channel's history, entry id `<offset>-0`, field `m` = the version-2 envelope,
//                field `t` = Redis's clock (unix ms) when appended: history_ttl is judged by Redis's clock.
//                Trimmed by XADD MAXLEN ~ history_size; expires history_ttl after the last publish.
std::string meta_key(std::string_view prefix, std::string_view channel);
std::string stream_key(std::string_view prefix, std::string_view channel);

// Presence of channel C (docs/redis.md "Presence"), same hash tag, every entry written by the presence
// scripts only:
//   P{C}:presence:expiry   zset: client id -> when the member expires (Redis's clock, unix ms)
//   P{C}:presence:members  hash: client id -> the member record (redis_envelope.hpp)
//   P{C}:presence:users    hash: user -> how many of the channel's members are that user's
// Each key expires PRESENCE_TTL after the last add or refresh, so a channel whose every node died leaves
// nothing behind.
std::string presence_expiry_key(std::string_view prefix, std::string_view channel);
std::string presence_members_key(std::string_view prefix, std::string_view channel);
std::string presence_users_key(std::string_view prefix, std::string_view channel);

// Every presence script first removes up to `limit` expired members (score <= now) from all three keys,
// PUBLISHing `leave header .. record` for each when a leave header is given: how the members of a node that
// died leave.
//
// Add or refresh members. KEYS: expiry, members, users. ARGV: 1 ttl ms, 2 the channel's Redis Pub/Sub
// channel, 3 join header ('' for none), 4 leave header ('' for none), 5 cleanup limit, 6.. member records.
// Each member expires ttl from now; one that was not there is recorded (members, users) and, with a join
// header, announced. Keys' expiry is raised to ttl (never lowered). Returns how many were not there.
extern const char* const presence_add;

// Remove one member. KEYS as above. ARGV: 1 client id, 2 Pub/Sub channel, 3 leave header ('' for none),
// 4 cleanup limit. Returns 1 when it was there (and then, with a leave header, announced its leave), else 0.
extern const char* const presence_remove;

// Read. KEYS as above. ARGV: 1 mode (`s` counts, `m` members), 2 max members, 3 Pub/Sub channel, 4 leave
// header ('' for none), 5 cleanup limit. Returns {live members, users} for `s`; {live members, {record...}}
// for `m`: at most `max` records of members not expired (false for one whose record is missing).
extern const char* const presence_read;

// The single ordering point of a channel. KEYS: meta, stream. ARGV: 1 Redis Pub/Sub channel, 2 an epoch for
// a channel without one (random, from the node), 3 history size (0: no stream), 4 history ttl ms, 5 meta ttl
// ms, 6 the envelope body (redis_envelope.hpp), 7 the primary's replication id ('' unless Sentinel or
// Cluster), 8 (Cluster) the primary's previous replication id, `master_replid2`. Gives
// the message the channel's next offset, appends it to the stream when history is on, PUBLISHes the version-2
// envelope and returns the offset (an integer). A meta created anew deletes a stale stream first: offsets
// restart at 1 in a new epoch, and stream ids with them. So does a meta written under another replication id:
// a replica promoted by a failover may not have the last offsets the old primary gave (replication is
// asynchronous), and giving them again under the same epoch would make nodes drop new messages as duplicates.
// With ARGV 8 only a meta written under that previous id, i.e. by the primary this one replaced, starts a new
// epoch: a meta brought by a slot migration (MIGRATE copies it whole) keeps its epoch.
extern const char* const publish;

// Position and messages. KEYS: meta, stream. ARGV: 1 an epoch for a channel without one (creates the meta
// with offset 0, so that the first publish keeps that epoch), 2 meta ttl ms, 3 mode, 4 since-epoch, 5 first
// offset wanted, 6 count (0: the position only), 7 window (0: none; else entries older than the newest
// `window` offsets are skipped: the channel's history_size, exact although MAXLEN ~ keeps a few more). Modes:
// `n` the newest `count` entries, newest first; `a` entries from offset ARGV[5] on, oldest first, when
// ARGV[4] is the channel's epoch (none otherwise); `A` the same, but from offset 1 when the epoch differs.
// Returns {epoch, offset, now, entries?}: `now` Redis's clock in unix ms, entries as XRANGE gives them:
// {{id, {"m", envelope, "t", unix ms}}, ...}.
extern const char* const read;

// The script `source` (one of the above) for Redis Cluster: every PUBLISH an SPUBLISH, to the channel's
// sharded Pub/Sub channel (in the slot of its keys). The same pointer for a source it does not know.
const char* sharded(const char* source);

}  // namespace bc::broker::redis_scripts
