import init, { benchDecode } from "./ovation_sdk.js";

await init({ module_or_path: "./ovation_sdk_bg.wasm" });
const frame = new Uint8Array(await (await fetch("batch.bin")).arrayBuffer());
const json = await (await fetch("batch.json")).text();

// The same dispatch for both: one handler call per event, by type.
let delivered = 0;
const handlers = {
  comment: () => delivered++,
  like: () => delivered++,
  online: () => delivered++,
  gift: () => delivered++,
  reaction: () => delivered++,
};
const dispatch = (events) => {
  for (const e of events) handlers[e.type](e);
};

function measure(batch, ms) {
  for (let i = 0; i < 200; i++) batch(); // warm up
  let batches = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 50; i++) batch();
    batches += 50;
    now = performance.now();
  }
  return batches / ((now - start) / 1000);
}

// Exactly what a session does per batch: wasm decode to JSON text, one JSON.parse,
// one handler call per event.
const ours = () => dispatch(JSON.parse(benchDecode(frame)));
const perBatch = JSON.parse(benchDecode(frame)).length;
// Where the time goes: the wasm part alone (decode + events JSON handed to JavaScript),
// and TextDecoder on the batch as UTF-8 versus as the SDK writes it (ASCII, \u escapes).
const utf8 = new TextEncoder().encode(json);
const ascii = new TextEncoder().encode(benchDecode(frame));
const decoder = new TextDecoder();
const rounds = [];
for (let round = 0; round < 3; round++) {
  rounds.push({
    ours: measure(ours, 1500) * perBatch,
    json: measure(() => dispatch(JSON.parse(json)), 1500) * perBatch,
    wasm: measure(() => benchDecode(frame), 500),
    utf8: measure(() => decoder.decode(utf8), 300),
    ascii: measure(() => decoder.decode(ascii), 300),
  });
}
const best = (k) => Math.max(...rounds.map((r) => r[k]));
const micros = (k) => Math.round(1e7 / best(k)) / 10;
window.benchResult = {
  events_per_batch: perBatch,
  frame_bytes: frame.length,
  json_bytes: json.length,
  ours_events_per_s: Math.round(best("ours")),
  json_events_per_s: Math.round(best("json")),
  wasm_us_per_batch: micros("wasm"),
  textdecoder_utf8_us: micros("utf8"),
  textdecoder_ascii_us: micros("ascii"),
  delivered,
};
