#!/usr/bin/env node
"use strict";
// The `reclo` launcher: the compiled CLI when `npm run build` has produced it, else the
// TypeScript sources through @swc-node/register (a development checkout).
// RECLO_CLI_FROM_SOURCE=1 forces the sources (the tests use it, so a stale dist/ cannot mask them).
const fs = require("node:fs");
const path = require("node:path");

const built = path.join(__dirname, "..", "dist", "src", "cli", "main.js");
let cli;
if (fs.existsSync(built) && process.env.RECLO_CLI_FROM_SOURCE !== "1") {
  cli = require(built);
} else {
  require("@swc-node/register");
  cli = require(path.join(__dirname, "..", "src", "cli", "main.ts"));
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
