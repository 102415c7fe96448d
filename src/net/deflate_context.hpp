#pragma once
// One worker thread's permessage-deflate machinery: the zlib streams every connection of the thread shares,
// and the rules for what is sent compressed.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/message.hpp"
#include "net/ws/message_deflater.hpp"
#include "net/ws/message_inflater.hpp"

namespace bc::net {

// Why per thread: with no context takeover in either direction (ws::negotiate_deflate) a message needs no
// state from the one before, so one deflate stream (~256 KiB) and one inflate stream (~40 KiB) serve every
// connection of the thread, and an idle connection holds no compression state at all. The streams are made
// on first use: a server whose clients never compress never allocates them.
//
// Owned by its worker and used on its thread only, except that deflated_tail() may build a publication's
// shared compressed tail for every thread (core::lazy_bytes makes that happen once).
class deflate_context {
 public:
  // `min_size`: a message smaller than this is sent uncompressed; `level`: zlib's 1..9.
  deflate_context(std::size_t min_size, int level) : min_size_(min_size), level_(level) {}

  // The publication's tail as raw DEFLATE (ws::message_deflater), built once per publication by the first
  // thread that asks; empty when the frame goes uncompressed (below the minimum size, or not smaller).
  const std::string& deflated_tail(const core::publication& pub);

  // A reply or other frame of this connection alone, compressed on the spot: the compressed payload, or
  // empty when `text` goes uncompressed.
  std::string deflate_message(std::string_view text);

  // Inflates a client's compressed message into a buffer of this thread, valid until the next call.
  ws::message_inflater::status inflate(std::string_view deflated, std::size_t max_bytes,
                                       std::string_view& out);

 private:
  ws::message_deflater& deflater();

  std::size_t min_size_;
  int level_;
  std::unique_ptr<ws::message_deflater> deflater_;
  std::unique_ptr<ws::message_inflater> inflater_;
  std::string inflated_;
};

}  // namespace bc::net
