// Command-line configuration of one run of the load generator (plain aggregate, defaults inline).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "peer_protocol.hpp"

namespace bc::bench {

struct bench_options {
  protocol_config proto;
  // Server processes sampled from /proc (empty = none). Several = several nodes: the k-th pid is the node
  // listening on the k-th --sub-ports entry, so its CPU can be divided by the deliveries of its subscribers.
  std::vector<int> server_pids;
  // Ports the subscribers connect to (empty = proto.port). Subscriber i opens port sub_ports[(i / K) % N]
  // (K channels, N ports): each channel's subscribers are spread round-robin over every node.
  std::vector<int> sub_ports;
  int broker_pid = 0;     // an external broker (redis-server): CPU reported apart, not counted as "other"
  int connections = 100;  // subscriber WebSocket connections
  int threads = 1;        // client event-loop threads
  int sources = 16;       // source addresses 127.0.0.first .. first+sources-1
  int source_first = 1;
  int connect_concurrency = 256;  // handshakes in flight at once (per process)
  double connect_timeout = 60;    // seconds for the whole connect+subscribe phase
  double idle = 0;                // seconds to hold connections idle before publishing (memory sample after)
  double rate = 0;                // publishes/s; 0 = as fast as the in-flight bound allows
  double duration = 0;            // seconds of publishing; 0 = no publishing
  int inflight = 4;               // publisher keep-alive connections, one request in flight on each
  double drain = 10;              // seconds to wait after publishing for acks and deliveries
  int payload_bytes = 0;          // extra padding in each payload
  bool payload_words = false;     // padding of words and numbers (compresses like text) instead of 'x's
  std::string label;              // scenario name copied into the JSON
  std::string json_out;           // also append the JSON line to this file
  bool check = false;             // exit 1 unless everything connected, nothing lost, no gaps, no errors
  bool deflate = false;           // subscribers offer permessage-deflate and inflate what they receive
  bool progress = true;
  // Reconnect storm: the last `storm` subscribers subscribe to channels nobody publishes to; `storm_at`
  // seconds into publishing they all drop their connections at once and reconnect, evenly spread over
  // `storm_spread` seconds, retrying a failed attempt after 100 ms; the run reports how long until all are
  // subscribed again and the delivery latency of the other subscribers before, during and after.
  int storm = 0;
  double storm_at = 3;
  double storm_spread = 1;
  double storm_timeout = 30;   // seconds to wait for every storm subscriber to be back
  int published_channels = 0;  // channels 0..this-1 are published to (0 = proto.channels: all)

  static constexpr int max_nodes = 16;
  int node_count() const { return sub_ports.empty() ? 1 : static_cast<int>(sub_ports.size()); }
  int node_port(int node) const {
    return sub_ports.empty() ? proto.port : sub_ports[static_cast<std::size_t>(node)];
  }
  int node_of(int subscriber) const { return (subscriber / std::max(1, pub_channels())) % node_count(); }
  int pub_channels() const { return published_channels > 0 ? published_channels : proto.channels; }
  bool in_storm(int subscriber) const { return storm > 0 && subscriber >= connections - storm; }
};

}  // namespace bc::bench
