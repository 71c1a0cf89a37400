// Peer of `cargo xtask bench fanout`: the Durable Object broadcast a user writes first.
// One object per room (by name); WebSockets through the hibernation API; every comment is
// stringified once and sent to every socket of the room, the sender's included.
//
//   GET /parties/main/{room}?user=U   (WebSocket upgrade)
//   client → {"type":"comment","text":"..."} | {"type":"like"}
//   server → {"type":"comment","user":"U","text":"...","ts":<ms>} | {"type":"likes","total":N}

import { DurableObject } from "cloudflare:workers";

const ROUTE = /^\/parties\/main\/([^/]+)$/;

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const match = ROUTE.exec(url.pathname);
    if (!match) {
      return new Response("not found\n", { status: 404 });
    }
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade\n", { status: 426 });
    }
    if (!url.searchParams.get("user")) {
      return new Response("the user query parameter is required\n", { status: 400 });
    }
    const room = decodeURIComponent(match[1]);
    return env.ROOMS.get(env.ROOMS.idFromName(room)).fetch(request);
  },
};

export class Room extends DurableObject {
  // In memory only: a room that hibernates starts counting again from 0 (a first version
  // does not persist it; the benchmark keeps its rooms busy).
  likes = 0;

  async fetch(request) {
    const user = new URL(request.url).searchParams.get("user");
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    // The attachment survives hibernation; a field on this object would not.
    server.serializeAttachment({ user });
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws, message) {
    if (typeof message !== "string") {
      return;
    }
    let request;
    try {
      request = JSON.parse(message);
    } catch {
      return;
    }
    if (request?.type === "comment" && typeof request.text === "string") {
      const { user } = ws.deserializeAttachment();
      this.broadcast(JSON.stringify({ type: "comment", user, text: request.text, ts: Date.now() }));
    } else if (request?.type === "like") {
      this.likes += 1;
      this.broadcast(JSON.stringify({ type: "likes", total: this.likes }));
    }
  }

  async webSocketClose(ws, code, reason) {
    // Complete the closing handshake; 1005 and 1006 are reserved and cannot be sent.
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }

  broadcast(frame) {
    for (const socket of this.ctx.getWebSockets()) {
      try {
        socket.send(frame);
      } catch {
        // A socket that is closing: its webSocketClose is on the way.
      }
    }
  }
}
