// Peer of `cargo xtask bench fanout`: the PartyServer room a user writes first, doing the
// same broadcast as bench/peers/naive-do (same paths, same JSON).
//
//   GET /parties/main/{room}?user=U   (WebSocket upgrade; the party is the binding `Main`)
//   client → {"type":"comment","text":"..."} | {"type":"like"}
//   server → {"type":"comment","user":"U","text":"...","ts":<ms>} | {"type":"likes","total":N}

import { routePartykitRequest, Server } from "partyserver";

export class Main extends Server {
  // PartyServer's documented setting for rooms that idle with sockets open; the other
  // Durable Object targets hibernate too, so the comparison is of broadcasting alone.
  static options = { hibernate: true };

  // In memory only, as in the naive peer.
  likes = 0;

  onConnect(connection, { request }) {
    // Connection state is the socket's attachment: it survives hibernation.
    connection.setState({ user: new URL(request.url).searchParams.get("user") });
  }

  onMessage(connection, message) {
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
      const { user } = connection.state;
      this.broadcast(JSON.stringify({ type: "comment", user, text: request.text, ts: Date.now() }));
    } else if (request?.type === "like") {
      this.likes += 1;
      this.broadcast(JSON.stringify({ type: "likes", total: this.likes }));
    }
  }
}

export default {
  async fetch(request, env) {
    return (
      (await routePartykitRequest(request, env, {
        onBeforeConnect: (req) => {
          if (!new URL(req.url).searchParams.get("user")) {
            return new Response("the user query parameter is required\n", { status: 400 });
          }
        },
      })) || new Response("not found\n", { status: 404 })
    );
  },
};
