#pragma once
// Pieces of the Prometheus text exposition format (version 0.0.4), for every layer that reports metrics.

#include <cstdint>
#include <string>
#include <string_view>

namespace bc::util {

// "# HELP <name> <help>" and "# TYPE <name> <type>": once per metric, before its samples.
inline void append_metric_header(std::string& out, std::string_view name, std::string_view type,
                                 std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ");
  out.append(name).append(" ").append(type).append("\n");
}

// One sample: "<name>{<labels>} <value>", or "<name> <value>" when `labels` is empty. `labels` is written as
// given (label="value",...), already escaped.
inline void append_sample(std::string& out, std::string_view name, std::string_view labels,
                          std::uint64_t value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ").append(std::to_string(value)).append("\n");
}

// A metric with one unlabelled sample.
inline void append_metric(std::string& out, std::string_view name, std::string_view type,
                          std::string_view help, std::uint64_t value) {
  append_metric_header(out, name, type, help);
  append_sample(out, name, {}, value);
}

}  // namespace bc::util
