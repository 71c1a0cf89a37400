// The player's reading of raw ID3 bytes (src/player.js): it finds the payload's text and
// never reads more than the format's bound past its start (the core parses the fields).

import { test } from "node:test";
import assert from "node:assert/strict";
// The installed package's player module (what `attachPlayer` loads), beside its index.
const { payloadFromBytes } = await import(new URL("./player.js", import.meta.resolve("ovation")));

const CUE_PAYLOAD_BYTES_MAX = 1024; // limits.rs: CLIENT_CUE_PAYLOAD_BYTES_MAX

const bytesOf = (text) => Uint8Array.from(text, (c) => c.charCodeAt(0));

test("a payload inside a TXXX frame's bytes is found up to its first unprintable byte", () => {
  const frame = new Uint8Array([
    0x03,
    ...bytesOf("ovation"),
    0,
    ...bytesOf("v=1;cue=c;ref=poll:p"),
    0,
  ]);
  assert.equal(payloadFromBytes(frame), "v=1;cue=c;ref=poll:p");
  assert.equal(payloadFromBytes(bytesOf("no cue here")), null);
  assert.equal(payloadFromBytes("v=1;cue=c"), null, "bytes only");
});

test("a hostile 64 KiB payload is cut one past the bound, without a RangeError", () => {
  const huge = bytesOf(`v=1;cue=c;x=${"a".repeat(64 * 1024)}`);
  const found = payloadFromBytes(huge);
  assert.equal(found.length, CUE_PAYLOAD_BYTES_MAX + 1, "one past: the core passes it over");
  assert.ok(found.startsWith("v=1;cue=c;"));
  const atBound = bytesOf(`v=1;cue=c;x=${"a".repeat(CUE_PAYLOAD_BYTES_MAX - 12)}`);
  assert.equal(payloadFromBytes(atBound).length, CUE_PAYLOAD_BYTES_MAX);
});

/** An ID3v2.4 tag (syncsafe sizes) of these frames: [id, body bytes]. */
function tag(frames) {
  const syncsafe = (n) => [(n >> 21) & 0x7f, (n >> 14) & 0x7f, (n >> 7) & 0x7f, n & 0x7f];
  const body = frames.flatMap(([id, data]) => [
    ...bytesOf(id),
    ...syncsafe(data.length),
    0,
    0,
    ...data,
  ]);
  return new Uint8Array([...bytesOf("ID3"), 4, 0, 0, ...syncsafe(body.length), ...body]);
}
const txxx = (owner, text) => [0x03, ...bytesOf(owner), 0, ...bytesOf(text)];

test("in a whole tag, only the ovation frame's value is read, and only within that frame", () => {
  // The frame after ours is printable ("TIT2" and a size of printable bytes): it used to
  // run on into the payload (`cue=cTIT2`), and the item never opened on its cue.
  const ours = ["TXXX", txxx("ovation", "v=1;ref=poll:p3;cue=c")];
  const title = ["TIT2", [0x03, ...bytesOf("A title, 40 bytes long............")]];
  assert.equal(payloadFromBytes(tag([ours, title])), "v=1;ref=poll:p3;cue=c");
  // Another frame's text, or another vendor's TXXX, saying `v=1;` is not a cue.
  const decoy = ["TIT2", [0x03, ...bytesOf("v=1;cue=decoy")]];
  const theirs = ["TXXX", txxx("other", "v=1;cue=theirs")];
  assert.equal(payloadFromBytes(tag([decoy, theirs, ours])), "v=1;ref=poll:p3;cue=c");
  assert.equal(payloadFromBytes(tag([decoy, theirs])), null);
  // PRIV owned by ovation.
  const priv = ["PRIV", [...bytesOf("ovation"), 0, ...bytesOf("v=1;cue=p")]];
  assert.equal(payloadFromBytes(tag([priv])), "v=1;cue=p");
});

test("frame flags, a tag after a tag, and tags this reader does not walk still give the cue", () => {
  const syncsafe = (n) => [(n >> 21) & 0x7f, (n >> 14) & 0x7f, (n >> 7) & 0x7f, n & 0x7f];
  const value = [...bytesOf("v=1;cue=c;ref=poll:p")];
  const ours = [0x03, ...bytesOf("ovation"), 0, ...value];
  const frame = (flags, prefix) => [
    ...bytesOf("TXXX"),
    ...syncsafe(prefix.length + ours.length),
    0,
    flags,
    ...prefix,
    ...ours,
  ];
  const tag24 = (frames) =>
    new Uint8Array([...bytesOf("ID3"), 4, 0, 0, ...syncsafe(frames.length), ...frames]);
  // v2.4 data-length indicator (4 bytes) and grouping (1 byte) before the frame's data.
  assert.equal(
    payloadFromBytes(tag24(frame(0x01, [0, 0, 0, ours.length]))),
    "v=1;cue=c;ref=poll:p",
  );
  assert.equal(payloadFromBytes(tag24(frame(0x40, [7]))), "v=1;cue=c;ref=poll:p");
  // Our frame in the second of two tags in one sample.
  const other = tag24([...bytesOf("TIT2"), ...syncsafe(3), 0, 0, 3, 65, 66]);
  const both = new Uint8Array([...other, ...tag24(frame(0, []))]);
  assert.equal(payloadFromBytes(both), "v=1;cue=c;ref=poll:p");
  // ID3v2.2 (not walked): scanned as before.
  const v22 = new Uint8Array([
    ...bytesOf("ID3"),
    2,
    0,
    0,
    ...syncsafe(value.length + 7),
    ...bytesOf("TXX"),
    0,
    0,
    20,
    ...value,
  ]);
  assert.equal(payloadFromBytes(v22), "v=1;cue=c;ref=poll:p");
});
