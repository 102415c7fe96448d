// Test setup for Node without a global WebSocket (Debian 12's Node 18): installs the `ws` package's WebSocket
// as globalThis.WebSocket, so that the SDK's default (globalThis.WebSocket) and the tests run the same way as
// on Node >= 22 and in browsers. scripts/run-tests.mjs preloads it with --require (a CommonJS file, because
// --require works on every Node version, before any test module is loaded); it changes nothing where a
// WebSocket exists already.
"use strict";
if (typeof globalThis.WebSocket === "undefined") {
  globalThis.WebSocket = require("ws").WebSocket;
}
