// A minimal app as a user writes it: the package imported by name, bundled by Vite.
// The service URL, room and token come from the page's query string (the test's driver).
import { connect } from "ovation";

const params = new URLSearchParams(location.search);
const status = document.getElementById("status");
const list = document.getElementById("comments");

try {
  const room = await connect({
    url: params.get("url"),
    room: params.get("room"),
    token: params.get("token"),
  });
  status.textContent = room.status;
  room.on("status", (e) => (status.textContent = e.status));
  room.on("comment", (e) => {
    const item = document.createElement("li");
    item.textContent = `${e.name}: ${e.text}`;
    list.append(item);
  });
} catch (e) {
  status.textContent = `error ${e.code}: ${e.message}`;
}
