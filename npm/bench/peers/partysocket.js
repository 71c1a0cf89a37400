// The smallest real PartyKit page: a reconnecting socket to a room, receive messages,
// send one. `cargo xtask bench sdk` bundles it for the browser (esbuild, minified) and
// gzips it.
import PartySocket from "partysocket";

const socket = new PartySocket({ host: "example.invalid", room: "room" });
socket.addEventListener("message", (event) => console.log(event.data));
socket.send(JSON.stringify({ text: "hello" }));
