// The SDK's hold on its sockets, with the real wasm session and no server: the WebSocket
// constructor is a script whose sockets the test closes as a network or a server would.
// Runs from the sources (`node --test npm/test/sockets.test.mjs`) and from the packed
// tarball (tests/tests/sdk_node.rs).
//
// * A socket closed from the other end is let go: its handlers are detached, so a session
//   that reconnects for hours holds only its live sockets (it held every one it had, with
//   its four handlers, for the session's life).

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "ovation";

/** A WebSocket that never opens; `drop()` closes it as a lost network does (1006). */
class ScriptedSocket {
  static made = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.binaryType = "blob";
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    ScriptedSocket.made.push(this);
  }

  send() {}

  close() {}

  drop() {
    this.onerror?.({ type: "error" });
    this.onclose?.({ code: 1006, reason: "" });
  }
}

test("sockets closed from the other end are let go, handlers and all", async () => {
  const controller = new AbortController();
  const connecting = connect({
    url: "http://127.0.0.1:1",
    room: "weur-sockets",
    token: "t",
    transport: "ws",
    WebSocket: ScriptedSocket,
    timeoutMs: 60000,
    signal: controller.signal,
  });
  const dropped = [];
  const deadline = Date.now() + 20000;
  while (dropped.length < 4) {
    assert.ok(Date.now() < deadline, `reconnects: ${ScriptedSocket.made.length}`);
    const live = ScriptedSocket.made.at(-1);
    if (live && !dropped.includes(live)) {
      live.drop();
      dropped.push(live);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  for (const socket of dropped) {
    assert.equal(socket.onclose ?? null, null, "a dropped socket is let go");
    assert.equal(socket.onmessage ?? null, null, "a dropped socket is let go");
  }
  // The session reconnects after each drop: the drops were seen, not ignored.
  assert.ok(ScriptedSocket.made.length >= 4);
  controller.abort();
  await assert.rejects(connecting, (e) => e.code === "aborted");
});
