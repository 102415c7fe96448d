#include "app/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace bc::app {

void setup_logging(const std::string& level) {
  auto logger = spdlog::stdout_logger_mt("broadcaster");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);  // tests and log shippers read lines as they come
  spdlog::set_default_logger(logger);
}

}  // namespace bc::app
