// The smallest real Centrifugo page: connect, subscribe to the room's channel, receive
// publications, publish one. `cargo xtask bench sdk` bundles it for the browser (esbuild,
// minified) and gzips it: the bytes a viewer downloads for this client.
import { Centrifuge } from "centrifuge";

const client = new Centrifuge("wss://example.invalid/connection/websocket", { token: "token" });
const room = client.newSubscription("room");
room.on("publication", (ctx) => console.log(ctx.data));
room.subscribe();
client.connect();
room.publish({ text: "hello" });
