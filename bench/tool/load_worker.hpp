// One client event loop (epoll, level-triggered) owning a slice of the subscriber connections and, on worker
// 0, the REST publisher connections. Workers share nothing but the run_state; every counter has one writer
// (its worker) and is read by the main thread for the progress line and the report.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "bench_options.hpp"
#include "latency_histogram.hpp"
#include "net/ws/message_inflater.hpp"
#include "peer_protocol.hpp"

namespace bc::bench {

enum class run_phase : int { connect, idle, publish, drain, done };

std::uint64_t now_us();  // CLOCK_MONOTONIC, microseconds

// Shared between the main thread and the workers.
struct run_state {
  explicit run_state(int channels) : subs_per_channel(static_cast<std::size_t>(channels)) {}
  std::atomic<run_phase> phase{run_phase::connect};
  std::atomic<std::uint64_t> publish_start_us{0};
  std::vector<std::atomic<std::uint32_t>> subs_per_channel;  // live subscribed connections per channel
  // Reconnect storm (bench_options::storm): 0 before, 1 from the drop until all are back, 2 afterwards.
  std::atomic<int> storm_phase{0};
  std::atomic<std::uint64_t> storm_start_us{0};
};

// Counters of one worker (single writer; relaxed reads from the main thread).
struct worker_counters {
  std::atomic<std::uint64_t> opened{0}, upgraded{0}, subscribed{0}, failed{0}, closed{0};
  std::atomic<std::uint64_t> received{0}, gaps{0}, out_of_order{0}, notifications{0};
  // Bytes subscribers read from the publish phase on; deliveries that arrived compressed; connections on
  // which the server accepted permessage-deflate.
  std::atomic<std::uint64_t> wire_bytes{0}, compressed{0}, deflate_agreed{0};
  std::atomic<std::uint64_t> last_subscribe_us{0}, last_delivery_us{0};
  std::atomic<std::uint64_t> pub_sent{0}, pub_acked{0}, pub_errors{0}, pub_reconnects{0}, expected{0};
  std::atomic<std::uint64_t> pub_behind{0};  // publishes sent > 1 ms after their slot (in-flight bound)
  std::atomic<int> pub_inflight{0};
  std::atomic<bool> connect_done{false};
  // Storm subscribers subscribed again after the drop, attempts that failed and were retried, and when the
  // last one was subscribed again.
  std::atomic<std::uint64_t> storm_resubscribed{0}, storm_retries{0}, last_storm_sub_us{0};
  // Per node (index into --sub-ports): subscribed connections and deliveries received from it.
  std::array<std::atomic<std::uint64_t>, bench_options::max_nodes> subscribed_by_node{}, received_by_node{};
};

class load_worker {
 public:
  load_worker(int id, const bench_options& opt, const peer_protocol& proto, run_state& state, int first_conn,
              int conn_count, bool publisher);
  ~load_worker();
  load_worker(const load_worker&) = delete;
  load_worker& operator=(const load_worker&) = delete;

  void run();  // until the phase is done

  const worker_counters& counters() const { return counters_; }
  const latency_histogram& histogram() const { return hist_; }
  // Deliveries by storm phase (run_state::storm_phase at receipt): before, during, after.
  const latency_histogram& storm_histogram(int phase) const {
    return storm_hist_[static_cast<std::size_t>(phase)];
  }
  // Latency of the deliveries received from one node (only kept with several nodes; else empty).
  const latency_histogram* node_histogram(int node) const {
    return static_cast<std::size_t>(node) < node_hist_.size()
               ? node_hist_[static_cast<std::size_t>(node)].get()
               : nullptr;
  }
  std::string first_error() const;

 private:
  struct connection;
  void open_more();
  bool open_one(connection& c);
  void on_event(connection& c, std::uint32_t events);
  void on_connected(connection& c);
  void on_readable(connection& c);
  std::size_t on_bytes(connection& c, char* data, std::size_t len);  // returns bytes consumed
  std::size_t on_upgrade_response(connection& c, char* data, std::size_t len);
  std::size_t on_frames(connection& c, char* data, std::size_t len);
  void on_text(connection& c, std::string_view text);
  void on_message(connection& c, std::string_view payload, bool compressed);
  std::size_t on_http_response(connection& c, char* data, std::size_t len);
  void send_text(connection& c, std::string_view text);
  void send_frame(connection& c, int opcode, std::string_view payload);
  void send_raw(connection& c, std::string_view bytes);
  void flush(connection& c);
  void update_interest(connection& c);
  void close_conn(connection& c, bool by_server);
  void publish_tick();
  void publish_on(connection& c);
  void note_error(const std::string& e);
  void mark_subscribed(connection& c);
  // The storm: drop every storm connection once, then reopen them at the paced rate and retry failures.
  void storm_tick();
  void drop_for_storm(connection& c);
  void reopen_for_storm(connection& c);

  int id_;
  const bench_options& opt_;
  const peer_protocol& proto_;
  run_state& state_;
  int epfd_ = -1;
  std::vector<std::unique_ptr<connection>> subs_;
  std::vector<std::unique_ptr<connection>> pubs_;
  std::size_t next_open_ = 0;
  int handshaking_ = 0;
  int first_conn_;
  std::vector<char> buf_;
  ws::message_inflater inflater_;  // connections whose server compresses each message on its own
  std::string inflated_;
  bool compressed_ = false;  // the message being handled arrived compressed
  worker_counters counters_;
  latency_histogram hist_;
  std::array<latency_histogram, 3> storm_hist_;
  std::vector<connection*> storm_conns_;
  std::size_t storm_next_ = 0;  // storm_conns_ reopened so far
  bool storm_dropped_ = false;
  std::deque<std::pair<std::uint64_t, connection*>> storm_retry_;  // (not before, connection)
  std::vector<std::unique_ptr<latency_histogram>> node_hist_;
  std::uint32_t mask_state_ = 0x9e3779b9u;
  std::uint64_t pub_seq_ = 0;
  int pub_channel_rr_ = 0;
  std::size_t pub_next_ = 0;  // publisher connection to try first (round-robin)
  std::string error_;
  bool publisher_;
};

}  // namespace bc::bench
