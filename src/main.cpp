#include <spdlog/spdlog.h>

#include <exception>
#include <iostream>
#include <string_view>

#include "app/config.hpp"
#include "app/logging.hpp"
#include "app/server.hpp"
#include "app/token_command.hpp"

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "token") {
    return bc::app::run_token_command(argc - 1, argv + 1, std::cout, std::cerr);
  }
  int exit_code = 0;
  auto cfg = bc::app::parse_config(argc, argv, exit_code);
  if (!cfg) return exit_code;
  try {
    bc::app::setup_logging(cfg->log_level, cfg->log_format);
    bc::app::server server(std::move(*cfg));
    return server.run();
  } catch (const std::exception& e) {
    // Start-up failures (port in use, bad address): one clear line.
    std::cerr << "broadcaster: " << e.what() << "\n";
    return 1;
  }
}
