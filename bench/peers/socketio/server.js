// Socket.IO peer for bench/run: WebSocket-only transport, a client emits "subscribe" (with an ack) to join the
// room named by the channel, and POST /publish/<channel> with a JSON body emits it as event "m" to that room.
// usage: node server.js PORT
'use strict';
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 0);
const server = http.createServer((req, res) => {
  const m = /^\/publish\/([\w:-]+)$/.exec(req.url);
  if (req.method !== 'POST' || !m) {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let payload;
    try {
      payload = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    io.to(m[1]).emit('m', payload);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 11 }).end('{"ok":true}');
  });
});
server.keepAliveTimeout = 300000;
server.headersTimeout = 301000;
server.maxRequestsPerSocket = 0;

// PER_MESSAGE_DEFLATE=1: permessage-deflate as `ws` does it (bench/run's target socketio-deflate): each
// connection's frames compressed on their own, frames from 128 bytes on (Broadcaster's --compression-min-size).
const perMessageDeflate = process.env.PER_MESSAGE_DEFLATE === '1' ? { threshold: 128 } : false;
const io = new Server(server, { transports: ['websocket'], serveClient: false, perMessageDeflate });
io.on('connection', (socket) => {
  socket.on('subscribe', (channel, ack) => {
    socket.join(String(channel));
    if (typeof ack === 'function') ack({ ok: true });
  });
});

server.listen(port, '127.0.0.1', 4096, () => {
  console.log(`listening on 127.0.0.1:${server.address().port} (socket.io ${require('socket.io/package.json').version})`);
});
