// The smallest real Ably page with the default entry: connect, receive a room's
// comments, publish one. `cargo xtask bench sdk` bundles it for the browser (esbuild,
// minified) and gzips it.
import * as Ably from "ably";

const client = new Ably.Realtime({ authUrl: "https://example.invalid/token" });
const room = client.channels.get("room");
room.subscribe("comment", (message) => console.log(message.data));
room.publish("comment", { text: "hello" });
