#!/usr/bin/env node
"use strict";
// The `reclo` launcher: the compiled CLI when `npm run build` has produced it, else the
// TypeScript sources through @swc-node/register (a development checkout).
// RECLO_CLI_FROM_SOURCE=1 forces the sources (the tests use it, so a stale dist/ cannot mask them);
// with RECLO_CLI_BUILD=<dir> as well, they run from <dir>, a tree compiled from them (the tests
// compile one per run, test/helpers/build.ts, instead of every CLI process compiling its modules).
// On a node older than the project's (Node 24), it runs itself again on the project's Node
// (scripts/node.sh: the machine's node when new enough, else .data/node/, installed on first use).
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "..");
const NODE_MAJOR = 24;

if (Number(process.versions.node.split(".")[0]) < NODE_MAJOR) {
  const { spawn } = require("node:child_process");
  const child = spawn("bash", [path.join(root, "scripts", "node.sh"), __filename, ...process.argv.slice(2)], { stdio: "inherit" });
  // Ctrl-C reaches the child straight from the terminal (same process group), so SIGINT is only
  // held off here (passing it on would stop the child twice); SIGTERM and SIGHUP are passed on.
  process.on("SIGINT", () => {});
  for (const sig of ["SIGTERM", "SIGHUP"]) process.on(sig, () => child.kill(sig));
  child.on("error", (err) => {
    process.stderr.write(`reclo: cannot start the project's Node ${NODE_MAJOR} (bash scripts/node.sh): ${err.message}\n`);
    process.exitCode = 1;
  });
  child.on("exit", (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exitCode = code ?? 1;
  });
} else {
  const built = path.join(root, "dist", "src", "cli", "main.js");
  let cli;
  if (fs.existsSync(built) && process.env.RECLO_CLI_FROM_SOURCE !== "1") {
    cli = require(built);
  } else if (process.env.RECLO_CLI_FROM_SOURCE === "1" && process.env.RECLO_CLI_BUILD) {
    process.setSourceMapsEnabled(true);
    cli = require(path.join(path.resolve(process.env.RECLO_CLI_BUILD), "src", "cli", "main.js"));
  } else {
    require("@swc-node/register");
    cli = require(path.join(root, "src", "cli", "main.ts"));
  }

  cli.main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`reclo: ${err && err.stack ? err.stack : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
