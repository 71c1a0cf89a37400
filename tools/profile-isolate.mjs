// Profiles the Worker's isolate during a benchmark run, through the V8 inspector that
// bench/host/host.mjs opens when OVATION_INSPECTOR_PORT is set (the figures of
// docs/benchmarks.md, 2026-12-05, came from these two modes):
//
//   OVATION_INSPECTOR_PORT=9229 cargo xtask bench fanout --viewers 1000 --only ovation &
//   node tools/profile-isolate.mjs cpu 8 6     # after 6 s, 8 s of CPU samples (200 µs):
//                                              # the top functions by self time
//   node tools/profile-isolate.mjs heap 40     # the JavaScript heap, each second
//   node tools/profile-isolate.mjs inclusive FILE   # a written profile's functions by
//                                              # inclusive share of the busy samples
//                                              # (the join-storm figures of 2026-12-06)
//   node tools/profile-isolate.mjs under FILE NAME  # what the functions whose name holds
//                                              # NAME spend their samples in: each
//                                              # callee's share of the busy samples
//
// Options: --port N (9229), --out FILE (cpu: also writes the .cpuprofile for DevTools).

import { readFileSync, writeFileSync } from "node:fs";
import WebSocket from "ws";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  if (at < 0) return fallback;
  const [, value] = args.splice(at, 2);
  return value;
};
const port = Number(option("--port", "9229"));
const out = option("--out", undefined);
const [mode, seconds = "10", delay = "0"] = args;
if (!["cpu", "heap", "inclusive", "under"].includes(mode)) {
  console.error(
    "usage: node tools/profile-isolate.mjs cpu|heap [SECONDS] [DELAY_S] [--port N] [--out FILE]\n" +
      "       node tools/profile-isolate.mjs inclusive FILE.cpuprofile\n" +
      "       node tools/profile-isolate.mjs under FILE.cpuprofile NAME",
  );
  process.exit(2);
}

/**
 * Each function's inclusive share of the samples that were not idle: the samples whose
 * stack holds it (once per stack, however deep it recurses). Rust symbols lose their hash.
 */
function inclusiveShares(profile) {
  const inclusive = new Map();
  for (const [stack, count] of sampledStacks(profile)) {
    for (const name of new Set(stack)) inclusive.set(name, (inclusive.get(name) ?? 0) + count);
  }
  const busy = profile.samples.length - (inclusive.get("(idle)") ?? 0);
  return { busy, inclusive };
}

/** Each sampled stack (function names, leaf first, Rust hashes dropped) and its samples. */
function sampledStacks(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parentOf.set(child, node.id);
  }
  const hits = new Map();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  return [...hits].map(([id, count]) => {
    const stack = [];
    for (let at = id; at !== undefined; at = parentOf.get(at)) {
      stack.push(byId.get(at).callFrame.functionName.replace(/::h[0-9a-f]{16}$/, ""));
    }
    return [stack, count];
  });
}

if (mode === "under") {
  // `seconds` is the file and `delay` the name here: the positional arguments of `cpu`.
  const profile = JSON.parse(readFileSync(seconds, "utf8"));
  const { busy } = inclusiveShares(profile);
  const callees = new Map();
  let total = 0;
  for (const [stack, count] of sampledStacks(profile)) {
    // The outermost frame that matches, and what it called (itself: its own time).
    const at = stack.findLastIndex((name) => name.includes(delay));
    if (at < 0) continue;
    total += count;
    const callee = at === 0 ? "(self)" : stack[at - 1] || "(anonymous)";
    callees.set(callee, (callees.get(callee) ?? 0) + count);
  }
  const share = (samples) => `${((100 * samples) / busy).toFixed(1).padStart(6)}%`;
  console.log(`${share(total)} under ${delay}`);
  for (const [name, samples] of [...callees].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`${share(samples)}   ${name}`);
  }
  console.log(`${busy} busy samples`);
  process.exit(0);
}

if (mode === "inclusive") {
  const { busy, inclusive } = inclusiveShares(JSON.parse(readFileSync(seconds, "utf8")));
  const top = [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 80);
  for (const [name, samples] of top) {
    console.log(`${((100 * samples) / busy).toFixed(1).padStart(6)}% ${name || "(anonymous)"}`);
  }
  console.log(`${busy} busy samples`);
  process.exit(0);
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The user Worker's inspector target, once the host is up. */
async function target() {
  for (;;) {
    try {
      const list = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
      const user = list.find((t) => /core:user/.test(t.webSocketDebuggerUrl ?? ""));
      if (user ?? list[0]) return user ?? list[0];
    } catch {
      // not up yet
    }
    await sleep(200);
  }
}

const ws = new WebSocket((await target()).webSocketDebuggerUrl);
await new Promise((resolve, reject) => {
  ws.once("open", resolve);
  ws.once("error", reject);
});
let nextId = 0;
const pending = new Map();
ws.on("message", (data) => {
  const message = JSON.parse(data);
  pending.get(message.id)?.(message.result);
  pending.delete(message.id);
});
const call = (method, params = {}) =>
  new Promise((resolve) => {
    nextId += 1;
    pending.set(nextId, resolve);
    ws.send(JSON.stringify({ id: nextId, method, params }));
  });

if (mode === "heap") {
  const started = Date.now();
  for (let i = 0; i < Number(seconds); i++) {
    const { usedSize, totalSize } = await call("Runtime.getHeapUsage");
    const mib = (bytes) => (bytes / 1048576).toFixed(2);
    console.log(
      `${Math.round((Date.now() - started) / 1000)} s: used ${mib(usedSize)} MiB, committed ${mib(totalSize)} MiB`,
    );
    await sleep(1000);
  }
} else {
  await sleep(Number(delay) * 1000);
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 200 });
  await call("Profiler.start");
  await sleep(Number(seconds) * 1000);
  const { profile } = await call("Profiler.stop");
  if (out) writeFileSync(out, JSON.stringify(profile));
  const selfSamples = new Map();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const key = `${functionName || "(anonymous)"} ${url.split("/").pop()}:${lineNumber}`;
    selfSamples.set(key, (selfSamples.get(key) ?? 0) + (node.hitCount ?? 0));
  }
  const total = [...selfSamples.values()].reduce((a, b) => a + b, 0);
  const top = [...selfSamples].sort((a, b) => b[1] - a[1]).slice(0, 25);
  for (const [key, samples] of top) {
    console.log(`${((100 * samples) / total).toFixed(1).padStart(5)}% ${key}`);
  }
  console.log(`${total} samples`);
}
ws.close();
process.exit(0);
