#pragma once
// The protocol's error codes: the one table of their names and HTTP statuses.

#include <string_view>

namespace bc::protocol {

enum class error_code {
  invalid_argument,
  not_found,
  already_exists,
  failed_precondition,
  permission_denied,
  unauthenticated,
  internal,
  resource_exhausted,  // (ext) a limit was hit
  unavailable,         // (ext) the broker is unreachable
};

std::string_view to_string(error_code code);
unsigned http_status(error_code code);

// A protocol error as it goes on the wire.
struct error {
  error_code code;
  std::string_view message;  // static or owned by the caller for the duration of encoding
};

}  // namespace bc::protocol
