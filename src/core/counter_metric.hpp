#pragma once
// A counter's Prometheus series, declared next to the counter it reports (net::net_metrics beside net_stats,
// protocol::session_metrics beside session_stats): the scrape renders these tables, so a new counter and its
// series are written in one place.

#include <string_view>

#include "core/local_counter.hpp"

namespace bc::core {

template <class Stats>
struct counter_metric {
  std::string_view name;
  std::string_view type;  // counter | gauge
  std::string_view help;
  local_counter Stats::*field;
  // label="value" pairs when several counters are the samples of one family (consecutive rows, same name).
  std::string_view labels = {};
};

}  // namespace bc::core
