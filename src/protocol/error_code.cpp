#include "protocol/error_code.hpp"

namespace bc::protocol {

// No default and -Wswitch as an error: a new code without a status does not compile.
#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
unsigned http_status(error_code code) {
  switch (code) {
    case error_code::invalid_argument:
      return 400;
    case error_code::failed_precondition:
      return 400;
    case error_code::unauthenticated:
      return 401;
    case error_code::permission_denied:
      return 403;
    case error_code::not_found:
      return 404;
    case error_code::already_exists:
      return 409;
    case error_code::resource_exhausted:
      return 429;
    case error_code::internal:
      return 500;
    case error_code::unavailable:
      return 503;
  }
  return 500;
}
#pragma GCC diagnostic pop

}  // namespace bc::protocol
