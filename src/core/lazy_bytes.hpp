#pragma once
// Bytes derived from immutable shared data by a layer above the core, built on first demand, at most once.

#include <mutex>
#include <string>

namespace bc::core {

// Opaque to the core: a publication carries one for the transport (its compressed form, built only when
// some subscriber's connection asked for compression), so that it is paid once per publication, not once per
// subscriber or per thread.
//
// Thread-safe: the first caller of get() on any thread runs `build`; callers on other threads meanwhile wait
// for it (std::call_once), and everyone afterwards reads the same bytes without a lock. `build` must not
// throw nor call get() on the same object.
class lazy_bytes {
 public:
  template <class Build>
  const std::string& get(Build&& build) const {
    std::call_once(once_, [&] { bytes_ = build(); });
    return bytes_;
  }

 private:
  mutable std::once_flag once_;
  mutable std::string bytes_;
};

}  // namespace bc::core
