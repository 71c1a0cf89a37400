// Peer of `cargo xtask bench fanout`: the Socket.IO v4 room a user writes first.
//
//   node bench/peers/socketio/server.mjs PORT      (or PORT=… in the environment)
//
// Clients connect with the WebSocket transport only (the load generator speaks Engine.IO
// v4 itself): ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket&room=R&user=U.
// Events: client → "comment" {text} (or the text itself) | "like";
// server → "comment" {user, text, ts} | "likes" {total}, to the whole room, sender included.

import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  // The load generator does not negotiate compression; the other peers send plain frames.
  perMessageDeflate: false,
  serveClient: false,
});

// Likes per room, in memory like the other peers.
const likes = new Map();

io.on("connection", (socket) => {
  const { room, user } = socket.handshake.query;
  if (typeof room !== "string" || room === "" || typeof user !== "string" || user === "") {
    socket.disconnect(true);
    return;
  }
  socket.join(room);
  socket.on("comment", (payload) => {
    const text = typeof payload === "string" ? payload : payload?.text;
    if (typeof text === "string") {
      io.to(room).emit("comment", { user, text, ts: Date.now() });
    }
  });
  socket.on("like", () => {
    const total = (likes.get(room) ?? 0) + 1;
    likes.set(room, total);
    io.to(room).emit("likes", { total });
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${httpServer.address().port}`);
});
