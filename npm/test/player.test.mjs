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
