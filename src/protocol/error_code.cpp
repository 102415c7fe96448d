#include "protocol/error_code.hpp"

namespace bc::protocol {

std::string_view to_string(error_code code) {
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
  return "Internal";
}

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

}  // namespace bc::protocol
