import "reflect-metadata";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import mysql from "mysql2/promise";
import { bundleWorkflowCode } from "@temporalio/worker";
import type { TestProject } from "vitest/node";
import { createDatabase } from "../src/db/client";
import { runMigrations } from "../src/db/migrate";
import { buildForTests } from "./helpers/build";

const root = path.resolve(__dirname, "..");

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    workflowBundlePath: string;
    /** src/ and workflows/ compiled once for the processes the tests spawn (test/helpers/build.ts). */
    productBuild: string;
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
  project.provide("productBuild", provided.productBuild);
}

interface Provided {
  databaseUrl: string;
  workflowBundlePath: string;
  productBuild: string;
}

async function prepare(): Promise<Provided> {
  execFileSync("bash", [path.join(root, "scripts/services.sh"), "up"], { stdio: "inherit", env: process.env });

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

  return { databaseUrl, workflowBundlePath, productBuild: buildForTests(root) };
}

const noop = () => {};
const silentLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };
