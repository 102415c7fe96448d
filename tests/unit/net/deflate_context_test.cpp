#include "net/deflate_context.hpp"

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "net/outbound_queue.hpp"
#include "net/ws/message_inflater.hpp"
#include "protocol/encoder.hpp"

namespace bc::net {
namespace {

core::publication_ptr publication(std::string payload, std::uint64_t offset = 7) {
  core::message m;
  m.id = "01939a5c-7b2e-7c4a-9d1e-3f2a1b0c9d8e";
  m.create_time_ms = 1'764'000'000'000;
  m.channel = "chat:room-1";
  m.event = "message";
  m.payload = std::move(payload);
  m.offset = offset;
  m.epoch = "e1";
  return protocol::encode_publication(std::move(m));
}

std::string json_payload(std::size_t n) {
  std::string p = "{\"text\":\"";
  while (p.size() < n) p += "hello world, ";
  return p + "\"}";
}

// Frame bytes from a queue, split into header flags and payload (one frame queued).
struct frame_view {
  bool rsv1;
  std::string payload;
};

frame_view only_frame(const outbound_queue& q) {
  iovec iov[8];
  std::string wire;
  for (std::size_t i = 0, n = q.gather(iov, 8); i < n; ++i)
    wire.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  const auto b1 = static_cast<std::uint8_t>(wire[1]);
  std::size_t h = (b1 & 0x7f) == 126 ? 4 : (b1 & 0x7f) == 127 ? 10 : 2;
  return {(static_cast<std::uint8_t>(wire[0]) & 0x40) != 0, wire.substr(h)};
}

std::string inflate(std::string_view deflated) {
  ws::message_inflater inf;
  std::string out;
  EXPECT_EQ(inf.inflate(deflated, 1 << 20, out), ws::message_inflater::status::ok);
  return out;
}

TEST(deflate_context, compressed_publication_frame_inflates_to_the_plain_one_for_every_seq) {
  deflate_context ctx(128, 6);
  const auto pub = publication(json_payload(1024));
  const std::string& tail = ctx.deflated_tail(*pub);
  ASSERT_FALSE(tail.empty());
  for (std::uint64_t seq : {1ull, 2ull, 99ull, 100ull, 4294967296ull}) {
    outbound_queue q;
    q.push_compressed_publication(pub, seq, tail);
    EXPECT_EQ(q.bytes(), outbound_queue::compressed_frame_bytes(*pub, seq, tail.size()));
    const frame_view f = only_frame(q);
    EXPECT_TRUE(f.rsv1);
    EXPECT_EQ(inflate(f.payload), pub->head + std::to_string(seq) + pub->tail);
    EXPECT_LT(f.payload.size(), (pub->head.size() + pub->tail.size()) / 2);
  }
}

TEST(deflate_context, presence_event_is_its_deflated_tail_alone) {
  deflate_context ctx(16, 6);
  core::message m;
  m.type = core::message::kind::join;
  m.channel = "chat:room-1";
  m.id = "client-1";
  m.event = "user-1";
  m.payload = json_payload(300);
  const auto pub = protocol::encode_publication(std::move(m));
  const std::string& tail = ctx.deflated_tail(*pub);
  ASSERT_FALSE(tail.empty());
  outbound_queue q;
  q.push_compressed_publication(pub, 0, tail);
  EXPECT_EQ(q.bytes(), outbound_queue::compressed_frame_bytes(*pub, 0, tail.size()));
  EXPECT_EQ(inflate(only_frame(q).payload), pub->tail);
}

TEST(deflate_context, small_or_incompressible_frames_stay_plain) {
  deflate_context ctx(256, 6);
  EXPECT_TRUE(ctx.deflated_tail(*publication("1")).empty());  // below the minimum
  // Random bytes do not compress: the stored block would only add to them.
  std::string noise;
  std::uint32_t x = 12345;
  for (int i = 0; i < 2000; ++i) {
    x = x * 1103515245u + 12345u;
    noise += static_cast<char>(x >> 23);
  }
  EXPECT_TRUE(ctx.deflated_tail(*publication(noise)).empty());
  EXPECT_TRUE(deflate_context(0, 6).deflate_message(std::string(1, 'x')).empty());
  EXPECT_FALSE(ctx.deflate_message(json_payload(300)).empty());
  EXPECT_TRUE(ctx.deflate_message(json_payload(100)).empty());
}

TEST(deflate_context, built_once_per_publication_across_threads) {
  const auto pub = publication(json_payload(2000));
  std::vector<const std::string*> seen(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] {
      deflate_context ctx(128, 6);  // each worker thread has its own zlib streams
      seen[i] = &ctx.deflated_tail(*pub);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto* s : seen) EXPECT_EQ(s, seen[0]);  // the very same bytes, built once
  EXPECT_EQ(inflate(*seen[0]), pub->tail);
}

TEST(deflate_context, inflate_is_bounded) {
  deflate_context ctx(0, 6);
  const std::string big = ctx.deflate_message(std::string(100000, 'a'));
  ASSERT_FALSE(big.empty());
  std::string_view out;
  EXPECT_EQ(ctx.inflate(big, 65536, out), ws::message_inflater::status::too_big);
  EXPECT_EQ(ctx.inflate(big, 100000, out), ws::message_inflater::status::ok);
  EXPECT_EQ(out, std::string(100000, 'a'));
}

}  // namespace
}  // namespace bc::net
