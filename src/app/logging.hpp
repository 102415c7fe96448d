#pragma once

#include <string>

namespace bc::app {

// One event per line on stdout, in UTC:
//   text: 2026-01-01T12:00:00.123Z info connection closed reason=slow_consumer
//   json: {"time":"2026-01-01T12:00:00.123Z","level":"info","msg":"connection closed reason=slow_consumer"}
// Callers never pass tokens or API keys to the log.
void setup_logging(const std::string& level, const std::string& format);

}  // namespace bc::app
