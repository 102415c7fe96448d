#pragma once
// Sizes of arrays indexed by an enum, derived from the enum rather than kept by hand.

#include <cstddef>

namespace bc::util {

// The number of values of a scoped enum E numbered from 0 without gaps: the values its constexpr to_string
// names, stopping at the first one it answers with an empty name. Pair it with a to_string whose switch has
// no default and is compiled with -Wswitch as an error (#pragma GCC diagnostic), so that a new enumerator
// without a name does not compile, and one with a name is counted.
template <typename E>
consteval std::size_t enum_count() {
  std::size_t n = 0;
  while (!to_string(static_cast<E>(n)).empty()) ++n;
  return n;
}

}  // namespace bc::util
