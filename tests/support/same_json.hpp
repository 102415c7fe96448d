#pragma once
// Shared by the unit tests and the fuzz targets that compare what a client would read with what was sent.

#include <boost/json.hpp>
#include <cmath>
#include <cstddef>
#include <limits>

namespace bc::testing {

// JSON equality as a client sees it: numbers compare by value whatever their C++ kind (the encoder writes
// 2.0 as 2, which reads back as an integer), everything else structurally. Doubles may differ in the last
// bits: Boost.JSON 1.81 does not round numbers of more than 19 digits correctly, so an 80-digit number and
// the shortest form of the double it became can read back one ulp apart
// (fuzz/regressions/rest_body/long_number).
inline bool same_json(const boost::json::value& a, const boost::json::value& b) {
  if (a.is_number() && b.is_number()) {
    if (!a.is_double() && !b.is_double()) return a == b;
    const double x = a.to_number<double>(), y = b.to_number<double>();
    return x == y || std::fabs(x - y) <= 4 * std::numeric_limits<double>::epsilon() * std::fabs(x);
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto &x = a.get_array(), &y = b.get_array();
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!same_json(x[i], y[i])) return false;
    return true;
  }
  if (a.is_object()) {
    const auto &x = a.get_object(), &y = b.get_object();
    if (x.size() != y.size()) return false;
    for (const auto& kv : x) {
      const auto* other = y.if_contains(kv.key());
      if (other == nullptr || !same_json(kv.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

}  // namespace bc::testing
