// A React app as a user writes it with `ovation/react`, in StrictMode, bundled by Vite
// from the packed tarball. The service URL, room and token come from the page's query
// string (the test's driver, drive.mjs).
import { StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import {
  OvationProvider,
  useComments,
  useConnectionStatus,
  useOnline,
  usePoll,
} from "ovation/react";

const params = new URLSearchParams(location.search);

function Status() {
  const { status, error } = useConnectionStatus();
  return <output id="status">{error ? `${status} ${error.code}` : status}</output>;
}

function Online() {
  return <output id="online">{useOnline()}</output>;
}

function Comments() {
  const comments = useComments({ max: 20 });
  return (
    <ul id="comments">
      {comments.map((c) => (
        <li key={c.seq}>
          {c.name}: {c.text}
        </li>
      ))}
    </ul>
  );
}

function Poll() {
  const { poll, vote } = usePoll();
  const [voted, setVoted] = useState("");
  if (!poll) return null;
  return (
    <section id="poll" data-phase={poll.phase}>
      <h2>{poll.question}</h2>
      {poll.options.map((option, i) => (
        <button
          type="button"
          key={option}
          onClick={() =>
            vote(i).then(
              () => setVoted(`voted ${option}`),
              (e) => setVoted(`error ${e.code}`),
            )
          }
        >
          {option}
        </button>
      ))}
      <output id="voted">{voted}</output>
      {poll.tallies && <output id="tallies">{poll.tallies.join(",")}</output>}
    </section>
  );
}

function App() {
  const [joined, setJoined] = useState(true);
  return (
    <main>
      <button type="button" id="leave" onClick={() => setJoined(false)}>
        leave
      </button>
      {joined && (
        <OvationProvider
          url={params.get("url")}
          room={params.get("room")}
          token={params.get("token")}
        >
          <p>
            status: <Status /> online: <Online />
          </p>
          <Comments />
          <Poll />
        </OvationProvider>
      )}
    </main>
  );
}

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
