// `replay()` when its code downloads and stalls (no server): a module hook makes the
// replay module's import, or its wasm's init, never finish for SDK copies imported with
// `?stalled-import` or `?stalled-wasm` in their URL. The call rejects `sdk_load_failed`
// within its deadline instead of hanging for good.
// Runs from the sources (`node --test npm/test/replay-load.test.mjs`) and from the packed
// tarball.

import { test } from "node:test";
import assert from "node:assert/strict";
import { register } from "node:module";

const HOOKS = `
export async function resolve(specifier, context, next) {
  const parent = context.parentURL || "";
  for (const variant of ["stalled-import", "stalled-wasm"]) {
    if (specifier === "./replay.js" && parent.includes("/src/index.js?" + variant)) {
      const real = await next(specifier, context);
      return { url: real.url + "?" + variant, shortCircuit: true };
    }
  }
  if (specifier === "../wasm/ovation_replay.js" && parent.includes("replay.js?stalled-wasm")) {
    const real = await next(specifier, context);
    return { url: real.url + "?stalled", shortCircuit: true };
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (url.endsWith("replay.js?stalled-import")) {
    // A module download that never ends: its evaluation never finishes.
    return { format: "module", source: "await new Promise(() => {});", shortCircuit: true };
  }
  if (url.endsWith("ovation_replay.js?stalled")) {
    const real = JSON.stringify(url.slice(0, url.lastIndexOf("?")));
    const source = "export * from " + real + ";" +
      "export default function () { globalThis.wasmInits = (globalThis.wasmInits || 0) + 1;" +
      " return new Promise(() => {}); }";
    return { format: "module", source, shortCircuit: true };
  }
  return next(url, context);
}`;
register(`data:text/javascript,${encodeURIComponent(HOOKS)}`);

const indexUrl = import.meta.resolve("ovation");

/** A fetch answering the recording's bounds at once (no events). */
const fetch = async () =>
  new Response(
    JSON.stringify({
      room: "weur-show",
      status: "ended",
      from_ms: 0,
      to_ms: 1,
      started_ms: 1_790_000_000_000,
      ended_ms: 1_790_000_060_000,
      recorded_to_ms: 1_790_000_060_000,
      events: [],
    }),
    { status: 200, headers: { "content-type": "application/json" } },
  );

const inits = () => globalThis.wasmInits ?? 0;

/** Waits (real time: the wasm file is read for real, not under the mocked clock) until
 * the stalled init was called `n` times in all, for at most 5 s. */
async function initsReach(n) {
  const until = Date.now() + 5000;
  while (inits() < n && Date.now() < until) await new Promise((r) => setImmediate(r));
}

/** Waits (real time, at most 2 s) until `done()`: a failure is an assertion, not a hang. */
async function settledWithin(done) {
  const until = Date.now() + 2000;
  while (!done() && Date.now() < until) await new Promise((r) => setImmediate(r));
}

for (const variant of ["stalled-import", "stalled-wasm"]) {
  test(`a replay whose code download stalls (${variant}) rejects sdk_load_failed within its deadline`, async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const sdk = await import(`${indexUrl}?${variant}`);
    const options = { url: "http://127.0.0.1:1", room: "weur-show", token: "t", fetch };
    const before = inits();
    const first = sdk.replay(options);
    let settled = false;
    first.then(
      () => (settled = true),
      () => (settled = true),
    );
    if (variant === "stalled-wasm") await initsReach(before + 1); // stalled in the init
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    t.mock.timers.tick(9_000);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, "still loading before the deadline");
    t.mock.timers.tick(1_000);
    await settledWithin(() => settled);
    assert.ok(settled, "settled at its deadline");
    await assert.rejects(
      first,
      (e) => e instanceof sdk.OvationError && e.code === "sdk_load_failed",
    );
  });
}
