#pragma once
// Value equality for the fuzz targets that compare what the server delivers with what was sent, when the
// delivered text is the sent text itself (raw_json): the kinds and the structure must be the same, and the
// numbers too, up to two quirks of Boost.JSON 1.81's number parsing, which are not the server's (clients
// parse the text with their own parser):
// - the same text may round a few ulp differently depending on where it sits in the buffer:
//   10.1023456789567890 inside {"payload":[...,1e-400,1e42]} and inside [...] alone
//   (fuzz/regressions/raw_json/context_dependent_rounding);
// - 0e400 reads as NaN (zero times an infinite power of ten), and NaN is unequal to itself.
#include <boost/json.hpp>
#include <cmath>
#include <cstddef>
#include <limits>

namespace bc::fuzzing {

inline bool same_double(double x, double y) {
  if (x == y || (std::isnan(x) && std::isnan(y))) return true;
  if (!std::isfinite(x) || !std::isfinite(y)) return false;
  const double scale = std::fmax(std::fabs(x), std::fabs(y));
  if (scale < std::numeric_limits<double>::min()) return true;  // both subnormal (or zero)
  return std::fabs(x - y) <= 4 * std::numeric_limits<double>::epsilon() * scale;
}

inline bool equal_json(const boost::json::value& a, const boost::json::value& b) {
  if (a.kind() != b.kind()) return false;
  if (a.is_double()) return same_double(a.get_double(), b.get_double());
  if (a.is_array()) {
    const auto &x = a.get_array(), &y = b.get_array();
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!equal_json(x[i], y[i])) return false;
    return true;
  }
  if (a.is_object()) {
    const auto &x = a.get_object(), &y = b.get_object();
    if (x.size() != y.size()) return false;
    for (const auto& kv : x) {
      const auto* other = y.if_contains(kv.key());
      if (other == nullptr || !equal_json(kv.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

}  // namespace bc::fuzzing
