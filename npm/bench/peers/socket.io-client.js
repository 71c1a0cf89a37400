// The smallest real Socket.IO page: connect with a token, receive comments, send one.
// `cargo xtask bench sdk` bundles it for the browser (esbuild, minified) and gzips it.
import { io } from "socket.io-client";

const socket = io("https://example.invalid", { auth: { token: "token" } });
socket.on("comment", (comment) => console.log(comment));
socket.emit("comment", { text: "hello" });
