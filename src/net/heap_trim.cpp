#include "net/heap_trim.hpp"

#include <malloc.h>

#include <utility>

namespace bc::net {

heap_trim::heap_trim(std::uint32_t threshold, std::function<void()> trim)
    : threshold_(threshold), trim_(trim ? std::move(trim) : [] { ::malloc_trim(0); }) {}

bool heap_trim::on_tick() {
  const bool quiet = this_tick_ == 0;
  this_tick_ = 0;
  if (!quiet || pending_ < threshold_) return false;
  pending_ = 0;
  trim_();
  return true;
}

}  // namespace bc::net
