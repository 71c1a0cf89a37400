// The same page with Ably's tree-shakable entry and only the plugins it needs (WebSocket
// transport, fetch for the token): what a size-conscious Ably user ships.
import { BaseRealtime, FetchRequest, WebSocketTransport } from "ably/modular";

const client = new BaseRealtime({
  authUrl: "https://example.invalid/token",
  plugins: { WebSocketTransport, FetchRequest },
});
const room = client.channels.get("room");
room.subscribe((message) => console.log(message.data));
room.publish("comment", { text: "hello" });
