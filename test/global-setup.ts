import "reflect-metadata";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import mysql from "mysql2/promise";
import { bundleWorkflowCode } from "@temporalio/worker";
import type { TestProject } from "vitest/node";
import { createDatabase } from "../src/db/client";
import { runMigrations } from "../src/db/migrate";
import { LOCKED_BACKUPS_BUCKET } from "./helpers/buckets";
import { buildForTests } from "./helpers/build";

const root = path.resolve(__dirname, "..");

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    workflowBundlePath: string;
    /** reclo-wg, the local target's WireGuard helper, built by scripts/wireguard.sh (products the tests start get it as VPN_HELPER_BINARY). */
    vpnHelperBinary: string;
    /** src/ and workflows/ compiled once for the processes the tests spawn (test/helpers/build.ts). */
    productBuild: string;
    /** SECRETS_KEY_FILE for products under test (scripts/test.sh's, else .data/secrets.key). */
    secretsKeyFile: string;
  }
}

/**
 * Once per test run: make sure the local services run (scripts/services.sh is idempotent and
 * installs what is missing), give the tests a fresh database with the committed migrations
 * applied, and bundle the workflow code once for every test worker.
 */
export default async function setup(project: TestProject): Promise<void> {
  // The integration and e2e projects both name this setup; the services, the database and the
  // bundle are made once per run (setups run one after another in vitest's main process).
  const done = (globalThis as { recloTestSetup?: Promise<Provided> }).recloTestSetup;
  const provided = await (done ?? ((globalThis as { recloTestSetup?: Promise<Provided> }).recloTestSetup = prepare()));
  project.provide("databaseUrl", provided.databaseUrl);
  project.provide("workflowBundlePath", provided.workflowBundlePath);
  project.provide("vpnHelperBinary", provided.vpnHelperBinary);
  project.provide("productBuild", provided.productBuild);
  project.provide("secretsKeyFile", provided.secretsKeyFile);
}

interface Provided {
  databaseUrl: string;
  workflowBundlePath: string;
  vpnHelperBinary: string;
  productBuild: string;
  /** The key products under test use (SECRETS_KEY_FILE) unless SECRETS_KEY is set: not one per data dir. */
  secretsKeyFile: string;
}

async function prepare(): Promise<Provided> {
  // SECRETS_KEY for products the tests start in production mode (scripts/test.sh makes it too).
  const secretsKey = path.join(process.env.RECLO_DATA_DIR ?? path.join(root, ".data"), "secrets.key");
  if (!process.env.SECRETS_KEY && !process.env.SECRETS_KEY_FILE && !fs.existsSync(secretsKey)) {
    fs.mkdirSync(path.dirname(secretsKey), { recursive: true });
    fs.writeFileSync(secretsKey, crypto.randomBytes(32).toString("base64") + "\n", { mode: 0o600 });
  }
  execFileSync("bash", [path.join(root, "scripts/services.sh"), "up"], { stdio: "inherit", env: process.env });
  // The bucket a production-mode product uses (npm start's default, Object Lock on), for tests that
  // start the product as production: created with the lock when missing.
  execFileSync(process.execPath, [path.join(root, "scripts/ensure-buckets.mjs"), "--object-lock"], { stdio: "inherit", env: { ...process.env, S3_BACKUPS_BUCKET: LOCKED_BACKUPS_BUCKET } });

  const serverUrl = process.env.TEST_DATABASE_SERVER_URL ?? "mysql://root@127.0.0.1:3306";
  const name = process.env.TEST_DATABASE_NAME ?? "reclo_test";
  const admin = await mysql.createConnection(serverUrl);
  await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  await admin.end();
  const databaseUrl = `${serverUrl}/${name}`;
  const database = createDatabase(databaseUrl, 1);
  await runMigrations(database);
  await database.close();

  const { code } = await bundleWorkflowCode({ workflowsPath: path.join(root, "workflows", "index.ts"), logger: silentLogger });
  const dir = path.join(root, ".data", "test");
  fs.mkdirSync(dir, { recursive: true });
  const workflowBundlePath = path.join(dir, "workflow-bundle.js");
  fs.writeFileSync(workflowBundlePath, code);

  // services.sh up built it already; this prints its path (the tests' data dirs are temporary, so
  // RECLO_DATA_DIR/bin of a product under test would not have it).
  const vpnHelperBinary = execFileSync("bash", [path.join(root, "scripts/wireguard.sh")], { encoding: "utf8", env: process.env }).trim();

  return { databaseUrl, workflowBundlePath, vpnHelperBinary, productBuild: buildForTests(root), secretsKeyFile: process.env.SECRETS_KEY_FILE ?? secretsKey };
}

const noop = () => {};
const silentLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };
