// Runs a Worker (its wrangler.toml) in workerd through Miniflare, without `wrangler dev`.
//
// Why: `wrangler dev` puts a proxy (a second workerd) in front of the Worker, and that
// proxy holds about six descriptors per WebSocket. Under this machine's hard open-file
// limit (20,000, not raisable) it dies near 3,300 sockets, so a 10,000-socket room cannot
// be measured through it. Here the Worker's own workerd takes the connections (about one
// descriptor each). The Worker is bundled exactly as `wrangler deploy` would bundle it
// (`wrangler deploy --dry-run --outdir`), and its bindings come from the same config.
//
//   node bench/host/host.mjs --config DIR/wrangler.toml --port N --persist DIR [--env-file F]
//
// `--env-file` adds the variables of a dotenv file (NAME='value' lines, as `cargo xtask`
// generates for `wrangler dev --env-file`) to the Worker's bindings: how the development
// tenant keys reach it, since wrangler.toml carries no key.
// Prints `host: ready on http://127.0.0.1:N` once serving; stops on SIGTERM/SIGINT.
// With OVATION_INSPECTOR_PORT=N in its environment (set it for `cargo xtask bench fanout`),
// the Worker's V8 inspector listens on that port, for `node tools/profile-isolate.mjs`
// (CPU profiles and heap usage of a run).

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

const USAGE =
  "usage: node bench/host/host.mjs --config WRANGLER_TOML --port N --persist DIR [--env-file FILE]";

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    const value = argv[i + 1];
    if (!["--config", "--port", "--persist", "--env-file"].includes(name) || value === undefined) {
      throw new Error(`bad argument ${name ?? ""}\n${USAGE}`);
    }
    args[name.slice(2)] = value;
  }
  for (const required of ["config", "port", "persist"]) {
    if (!(required in args)) throw new Error(`--${required} is required\n${USAGE}`);
  }
  const port = Number(args.port);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`--port ${args.port}: not a TCP port\n${USAGE}`);
  }
  return {
    config: resolve(args.config),
    port,
    persist: resolve(args.persist),
    envFile: args["env-file"],
  };
}

/** NAME=value or NAME='value' lines of a dotenv file (comments and blank lines skipped). */
function readEnvFile(file) {
  const vars = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match || line.trimStart().startsWith("#")) continue;
    const quoted = /^(['"])(.*)\1$/.exec(match[2]);
    vars[match[1]] = quoted ? quoted[2] : match[2];
  }
  return vars;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const { config, port, persist, envFile } = parseArgs(process.argv.slice(2));

// Bundle as `wrangler deploy` does (bare npm imports resolved, wasm kept as modules).
const bundle = join(persist, "bundle");
rmSync(bundle, { recursive: true, force: true });
mkdirSync(bundle, { recursive: true });
execFileSync(
  join(root, "node_modules/.bin/wrangler"),
  ["deploy", "--dry-run", "--outdir", bundle, "--config", config],
  { cwd: dirname(config), stdio: ["ignore", "ignore", "inherit"] },
);

const { workerOptions, main } = unstable_getMiniflareWorkerOptions(config);
const miniflare = new Miniflare({
  ...workerOptions,
  bindings: { ...workerOptions.bindings, ...(envFile ? readEnvFile(envFile) : {}) },
  modules: true,
  // The bundle keeps the entry's file name.
  scriptPath: join(bundle, basename(main)),
  modulesRoot: bundle,
  host: "127.0.0.1",
  port,
  durableObjectsPersist: join(persist, "durable-objects"),
  ...(process.env.OVATION_INSPECTOR_PORT
    ? { inspectorPort: Number(process.env.OVATION_INSPECTOR_PORT) }
    : {}),
});
const url = await miniflare.ready;
console.log(`host: ready on ${url}`);

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    await miniflare.dispose();
    process.exit(0);
  });
}
