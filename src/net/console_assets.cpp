#include "net/console_assets.hpp"

namespace bc::net {

const console_asset* find_console_asset(std::string_view name) {
  for (std::size_t i = 0; i < console_data::asset_count; ++i) {
    if (console_data::assets[i].name == name) return &console_data::assets[i];
  }
  return nullptr;
}

bool console_sdk_embedded() {
  return console_data::sdk_embedded;
}

}  // namespace bc::net
