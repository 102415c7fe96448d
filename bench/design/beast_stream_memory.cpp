// Measures what Boost.Beast's websocket::stream costs per idle connection, for docs/design.md: the RSS
// growth of N streams over connected loopback TCP sockets after an accepted handshake and one small
// message each way (so the buffers that a live connection holds are allocated).
//
//   build/bench/beast_stream_memory [N=2000]
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace net = boost::asio;
namespace ws = boost::beast::websocket;
using tcp = net::ip::tcp;

static long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::stoi(argv[1]) : 2000;
  net::io_context ioc;
  tcp::acceptor acc(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  std::vector<std::unique_ptr<ws::stream<tcp::socket>>> servers, clients;
  servers.reserve(n);
  clients.reserve(n);
  // Client sockets are measured too; subtract them by building plain client sockets first.
  const long before = rss_kib();
  for (int i = 0; i < n; ++i) {
    auto c = std::make_unique<ws::stream<tcp::socket>>(ioc);
    c->next_layer().connect(acc.local_endpoint());
    auto s = std::make_unique<ws::stream<tcp::socket>>(acc.accept());
    c->async_handshake("127.0.0.1", "/", [](boost::system::error_code) {});
    s->async_accept([](boost::system::error_code) {});
    ioc.run();
    ioc.restart();
    c->write(net::buffer(std::string("{\"id\":1}")));
    boost::beast::flat_buffer b;
    s->read(b);
    s->write(net::buffer(std::string("{\"requestId\":1}")));
    boost::beast::flat_buffer b2;
    c->read(b2);
    servers.push_back(std::move(s));
    clients.push_back(std::move(c));
  }
  const long after = rss_kib();
  // Both ends are Beast streams of the same kind, so the server side is half of the growth.
  std::cout << "beast websocket::stream: " << n << " connections, "
            << (after - before) * 1024.0 / n / 2 / 1024 << " KiB per server-side stream\n";
}
