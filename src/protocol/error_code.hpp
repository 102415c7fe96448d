#pragma once
// The protocol's error codes: the one table of their names and HTTP statuses.

#include <cstddef>
#include <string_view>

#include "util/enum_count.hpp"

namespace bc::protocol {

// Numbered from 0 without gaps: the per-code counters are indexed by it and sized by error_code_count.
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

// The code's name on the wire, and empty for a number that is no code. No default and -Wswitch as an error:
// a new code without a name does not compile.
#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
constexpr std::string_view to_string(error_code code) {
  switch (code) {
    case error_code::invalid_argument:
      return "InvalidArgument";
    case error_code::not_found:
      return "NotFound";
    case error_code::already_exists:
      return "AlreadyExists";
    case error_code::failed_precondition:
      return "FailedPrecondition";
    case error_code::permission_denied:
      return "PermissionDenied";
    case error_code::unauthenticated:
      return "Unauthenticated";
    case error_code::internal:
      return "Internal";
    case error_code::resource_exhausted:
      return "ResourceExhausted";
    case error_code::unavailable:
      return "Unavailable";
  }
  return {};
}
#pragma GCC diagnostic pop

inline constexpr std::size_t error_code_count = util::enum_count<error_code>();

unsigned http_status(error_code code);

// A protocol error as it goes on the wire.
struct error {
  error_code code;
  std::string_view message;  // static or owned by the caller for the duration of encoding
};

}  // namespace bc::protocol
