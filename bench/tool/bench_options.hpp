// Command-line configuration of one run of the load generator (plain aggregate, defaults inline).
#pragma once

#include <cstdint>
#include <string>

#include "peer_protocol.hpp"

namespace bc::bench {

struct bench_options {
  protocol_config proto;
  int server_pid = 0;     // for /proc sampling (0 = none)
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
  std::string label;              // scenario name copied into the JSON
  std::string json_out;           // also append the JSON line to this file
  bool check = false;             // exit 1 unless everything connected, nothing lost, no gaps, no errors
  bool progress = true;
};

}  // namespace bc::bench
