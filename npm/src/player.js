// Video sync for `room.attachPlayer` (loaded on first use). The Rust core (`Playback`)
// decides when a cue fires and which server time the video has reached; this module only
// reads the player: metadata text tracks, hls.js samples, the playhead and
// EXT-X-PROGRAM-DATE-TIME, and never relies on one signal alone (players differ in when
// they create the metadata track and which cuechange events they emit).

const PAYLOAD_PREFIX = "v=1;";

// Events held for the video in order are few; beyond this the oldest are let go.
const HELD_EVENTS_MAX = 2048;
// A cue payload is at most this long (the format's bound, limits.rs); the scan of raw ID3
// bytes stops one past it, and the core passes a longer one over.
const CUE_PAYLOAD_BYTES_MAX = 1024;

/** When a cued part opened on the server (ms since the epoch), if the value says. */
function openedMsOf(name, value) {
  const ms =
    name === "poll"
      ? value.opened_ms
      : name === "quiz"
        ? value.question?.opened_ms
        : name === "product"
          ? value.pinned_ms
          : undefined;
  return Number.isFinite(ms) ? ms : undefined;
}

/** Printable ASCII from the first `v=1;` in `bytes`, at most one past the format's bound. */
function scanPayload(bytes) {
  const p = [118, 61, 49, 59]; // "v=1;"
  outer: for (let i = 0; i + p.length <= bytes.length; i++) {
    for (let j = 0; j < p.length; j++) if (bytes[i + j] !== p[j]) continue outer;
    let end = i;
    const last = Math.min(bytes.length, i + CUE_PAYLOAD_BYTES_MAX + 1);
    while (end < last && bytes[end] >= 0x20 && bytes[end] < 0x7f) end++;
    return String.fromCharCode(...bytes.subarray(i, end));
  }
  return null;
}

const OWNER = "ovation";

/** Whether a TXXX (`text`: after its encoding byte) or PRIV body is named `ovation`; the value's start. */
function ownedValueAt(body, text) {
  const from = text ? 1 : 0;
  const nul = body.indexOf(0, from);
  if (nul < 0 || nul - from !== OWNER.length) return -1;
  for (let i = 0; i < OWNER.length; i++) if (body[from + i] !== OWNER.charCodeAt(i)) return -1;
  return nul + 1;
}

/**
 * The cue payload in raw ID3 bytes: in whole tags (hls.js's samples; one or more in a
 * row), the value of the TXXX or PRIV frame named `ovation`, read within that frame
 * (another frame's text, or the next frame's header, is never taken for it). Bytes that
 * are not such a tag (a lone frame's body), and a tag this walk cannot read (ID3v2.2,
 * unsynchronisation), are scanned for the printable text from `v=1;` as before.
 */
export function payloadFromBytes(bytes) {
  if (!(bytes instanceof Uint8Array)) return null;
  const syncsafe = (at) =>
    ((bytes[at] & 0x7f) << 21) |
    ((bytes[at + 1] & 0x7f) << 14) |
    ((bytes[at + 2] & 0x7f) << 7) |
    (bytes[at + 3] & 0x7f);
  const be32 = (at) =>
    ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
  let tag = 0;
  while (
    tag + 10 <= bytes.length &&
    bytes[tag] === 0x49 &&
    bytes[tag + 1] === 0x44 &&
    bytes[tag + 2] === 0x33
  ) {
    const version = bytes[tag + 3];
    const flags = bytes[tag + 5];
    // Versions 3 and 4 without unsynchronisation: the rest is scanned as before.
    if ((version !== 3 && version !== 4) || flags & 0x80) return scanPayload(bytes.subarray(tag));
    const v4 = version === 4;
    const end = Math.min(
      bytes.length,
      tag + 10 + syncsafe(tag + 6) + (v4 && flags & 0x10 ? 10 : 0),
    );
    let at = tag + 10;
    if (flags & 0x40 && at + 4 <= end) at += v4 ? syncsafe(at) : be32(at) + 4; // extended header
    while (at + 10 <= end && bytes[at] !== 0) {
      const id = String.fromCharCode(...bytes.subarray(at, at + 4));
      const size = v4 ? syncsafe(at + 4) : be32(at + 4);
      const format = bytes[at + 9];
      // Grouping and data-length bytes before the data; compressed, encrypted or
      // unsynchronised data is not read here.
      const skip = v4 ? (format & 0x40 ? 1 : 0) + (format & 0x01 ? 4 : 0) : format & 0x20 ? 1 : 0;
      const unreadable = v4 ? format & 0x0e : format & 0xc0;
      const body = bytes.subarray(at + 10 + skip, Math.min(end, at + 10 + size));
      if ((id === "TXXX" || id === "PRIV") && !unreadable) {
        const value = ownedValueAt(body, id === "TXXX");
        const found = value < 0 ? null : scanPayload(body.subarray(value));
        if (found) return found;
      }
      at += 10 + size;
    }
    tag = end;
  }
  // Tags read through hold no cue; bytes that are no tag are a frame's body.
  return tag > 0 ? null : scanPayload(bytes);
}

/** The payload a metadata text track cue carries (DataCue or hls.js's VTTCue with `value`). */
export function payloadOfTrackCue(cue) {
  const value = cue?.value;
  // Safari's DataCue names the frame (`key`) and its description or owner (`info`):
  // another vendor's TXXX or PRIV is not ours, whatever its text.
  if (value && typeof value.info === "string" && value.info !== OWNER) return null;
  if (value && typeof value.data === "string")
    return value.data.startsWith(PAYLOAD_PREFIX) ? value.data : null;
  if (value && value.data instanceof ArrayBuffer)
    return payloadFromBytes(new Uint8Array(value.data));
  if (value && value.data instanceof Uint8Array) return payloadFromBytes(value.data);
  if (cue && typeof cue.text === "string" && cue.text.startsWith(PAYLOAD_PREFIX)) return cue.text;
  return null;
}

/**
 * The wall-clock time (ms since the epoch) of media time `seconds`, from
 * EXT-X-PROGRAM-DATE-TIME (hls.js's `playingDate`, or the native player's start date);
 * undefined for a stream without it.
 */
export function wallClockOf(video, hls, seconds) {
  if (hls && hls.playingDate instanceof Date && !Number.isNaN(hls.playingDate.getTime())) {
    return hls.playingDate.getTime() + (seconds - video.currentTime) * 1000;
  }
  if (typeof video.getStartDate === "function") {
    const start = video.getStartDate().getTime();
    if (!Number.isNaN(start)) return start + seconds * 1000;
  }
  return undefined;
}

/**
 * Hands hls.js's ID3 samples to `add(payload, seconds)` at their presentation time (not
 * when parsed); returns what stops it (nothing to stop without hls.js).
 */
export function listenHlsCues(hls, add) {
  if (!hls || typeof hls.on !== "function") return () => {};
  const onMetadata = (_event, data) => {
    for (const sample of data?.samples || []) add(payloadFromBytes(sample.data), sample.pts);
  };
  hls.on("hlsFragParsingMetadata", onMetadata);
  return () => hls.off("hlsFragParsingMetadata", onMetadata);
}

/** Wires `video` (and `hls`, if given) to `room`; returns the detach function. */
export function attach(room, player, video, hls, Playback) {
  const sync = player.sync;
  const core = new Playback();
  const cleanups = [];
  let detached = false;
  const listen = (target, type, fn) => {
    target.addEventListener(type, fn);
    cleanups.push(() => target.removeEventListener(type, fn));
  };
  const add = (payload, seconds) => {
    if (payload && Number.isFinite(seconds)) core.addCue(payload, seconds * 1000);
  };
  // Signal 1: metadata text tracks (native HLS, webviews, hls.js's own ID3 track). Their
  // cues are read as soon as they exist; the core fires each when its frame plays.
  const tracked = new Set();
  const scanTracks = () => {
    for (const track of Array.from(video.textTracks || [])) {
      if (track.kind !== "metadata") continue;
      if (track.mode === "disabled") track.mode = "hidden"; // cues load only when not disabled
      if (!tracked.has(track)) {
        tracked.add(track);
        listen(track, "cuechange", () => {
          for (const cue of Array.from(track.activeCues || []))
            add(payloadOfTrackCue(cue), cue.startTime);
          turn(video.currentTime);
        });
      }
      for (const cue of Array.from(track.cues || [])) add(payloadOfTrackCue(cue), cue.startTime);
    }
  };
  if (video.textTracks?.addEventListener) {
    listen(video.textTracks, "addtrack", () => scanTracks());
  }
  // Signal 2: hls.js's samples, placed at their presentation time (not fired on parse).
  cleanups.push(listenHlsCues(hls, add));
  const wallOf = (seconds) => wallClockOf(video, hls, seconds);
  // Cued interactions the core says open now: their cue played or lies behind the
  // playhead (joined or seeked past it). The core tells each cue id once.
  // Every loop over the core stops once a handler it ran detached the player (which
  // frees the core): a freed core throws.
  const takeOpen = () => {
    for (let cueId; !detached && (cueId = core.pollOpen()) !== undefined; ) {
      room._markPlayed(cueId); // later updates of it show at once
      for (const [name, entry] of room._waiting) {
        if (entry.cue === cueId) {
          room._waiting.delete(name);
          room._emit(name, entry.value);
        }
      }
    }
  };
  // With sync "video", comments, reactions, gifts and removals wait (in order) until the
  // video reached their server time; held only while that time is known (a stream
  // without EXT-X-PROGRAM-DATE-TIME cannot be synced: events show at once).
  const held = [];
  let heldWallMs;
  player.hold = (type, event) => {
    const ahead = heldWallMs !== undefined && event.ts_ms > heldWallMs;
    if (detached || sync !== "video" || !(held.length > 0 || ahead)) return false;
    held.push([type, event]);
    if (held.length > HELD_EVENTS_MAX) {
      const [oldType, oldEvent] = held.shift();
      room._emit(oldType, oldEvent);
    }
    return true;
  };
  const releaseHeld = (wallMs) => {
    heldWallMs = wallMs;
    if (wallMs === undefined) return;
    while (held.length > 0 && held[0][1].ts_ms <= wallMs) {
      const [type, event] = held.shift();
      room._emit(type, event);
    }
  };
  player.awaitCue = ({ name, cue, value, atAttach }) => {
    if (detached) return;
    core.awaitCue(cue, openedMsOf(name, value), atAttach);
    takeOpen();
  };
  for (const [, entry] of room._waiting) player.awaitCue(entry);
  const turn = (seconds, seeked = false) => {
    if (detached || !Number.isFinite(seconds)) return;
    // While a seek is under way, frame callbacks and timeupdates may still report the
    // old position (after a report of the new one): only `seeked` says where play goes on.
    if (video.seeking && !seeked) return;
    scanTracks();
    if (seeked) core.seek(seconds * 1000, wallOf(seconds));
    else core.playhead(seconds * 1000, wallOf(seconds));
    // The core reads the payload (`{cue, ref}`); the media time is the player's.
    for (let json; !detached && (json = core.pollCue()) !== undefined; ) {
      const cue = JSON.parse(json);
      room._markPlayed(cue.cue);
      room._emit("cue", { ...cue, media_time: seconds });
    }
    takeOpen();
    if (!detached && sync === "video") releaseHeld(core.releaseBeforeMs());
  };
  listen(video, "playing", () => turn(video.currentTime));
  listen(video, "timeupdate", () => turn(video.currentTime));
  listen(video, "seeked", () => turn(video.currentTime, true));
  // Every presented frame when the browser says so (the cue's frame, not the next
  // timeupdate 250 ms later).
  if (typeof video.requestVideoFrameCallback === "function") {
    let handle;
    const onFrame = (_now, meta) => {
      if (detached) return;
      turn(meta && Number.isFinite(meta.mediaTime) ? meta.mediaTime : video.currentTime);
      handle = video.requestVideoFrameCallback(onFrame);
    };
    handle = video.requestVideoFrameCallback(onFrame);
    cleanups.push(() => video.cancelVideoFrameCallback(handle));
  }
  scanTracks();
  // Attached to a video already playing: what is behind its playhead opens now, not at
  // the next frame.
  if (!video.paused && video.readyState >= 2) turn(video.currentTime);
  player.detach = () => {
    if (detached) return;
    detached = true;
    for (const undo of cleanups.splice(0)) undo();
    core.free();
    if (room._player === player) room._player = null;
    releaseHeld(Infinity);
    room._showWaiting();
  };
  // room.close(): what is held is dropped, not shown.
  player.close = () => {
    held.length = 0;
    player.detach();
  };
  return player.detach;
}
