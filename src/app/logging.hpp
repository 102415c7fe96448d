#pragma once

#include <string>

namespace bc::app {

// One line per event on stdout: "2026-01-01T12:00:00.123Z info message". Never given tokens or keys.
void setup_logging(const std::string& level);

}  // namespace bc::app
