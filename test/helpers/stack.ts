import "reflect-metadata";
import { Writable } from "node:stream";
import { inject } from "vitest";
import { loadConfig, type Config, type Env } from "../../src/config";
import { createLogger, type Logger } from "../../src/logger";
import { createRuntime, type Runtime } from "../../src/runtime";
import { startApp, type RunningApp } from "../../src/server/app";
import { GraphQLRequestError, ReCloClient } from "../../src/client/graphql-client";
import { LogInDocument, SignUpDocument, VerifyEmailDocument } from "../../src/client/generated/graphql";
import { linksIn, waitForMail, type Mail } from "./mailpit";

export interface TestStack {
  config: Config;
  rt: Runtime;
  app: RunningApp;
  /** Anonymous client on this stack's /graphql. */
  client: ReCloClient;
  /** Every JSON log line written so far. */
  logs: string[];
  stop(): Promise<void>;
}

function pick(env: NodeJS.ProcessEnv, names: string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((n) => (env[n] ? [[n, env[n]!]] : [])));
}

/** Environment for a test stack: the real services, the test database, an ephemeral port. */
export function testEnv(overrides: Partial<Record<keyof Env, string>> = {}): NodeJS.ProcessEnv {
  return {
    NODE_ENV: "test",
    LOG_LEVEL: "info",
    PORT: "0",
    DATABASE_URL: inject("databaseUrl"),
    DATABASE_POOL_SIZE: "4",
    MIGRATE_ON_START: "false",
    VPN_HELPER_BINARY: inject("vpnHelperBinary"),
    // Every test creates its accounts from 127.0.0.1; the tests of these limits set their own.
    SIGNUP_MAX_PER_ADDRESS: "100000",
    LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "100000",
    // Every test user verifies its address (and some reset passwords) from 127.0.0.1 too.
    ACCOUNT_TOKEN_MAX_PER_ADDRESS: "100000",
    PASSWORD_RESET_MAX_PER_ADDRESS: "100000",
    // Test files share one database: the local host's machine limit would count every other file's
    // machines and active fixture rows, so a start could be refused by what another file runs at
    // that moment (seen: outages' Temporal case refused HOST_RUNNING_MACHINES). No limit here;
    // test/integration/quotas.test.ts sets its own to test it.
    HOST_MAX_RUNNING_MACHINES: "0",
    // Webhook receivers in tests listen on 127.0.0.1 (the refusal is tested with this set to false).
    WEBHOOK_ALLOW_PRIVATE_ADDRESSES: "true",
    // Run a suite against an Object Lock bucket: S3_BACKUPS_BUCKET=<locked bucket> OBJECT_LOCK_MODE=GOVERNANCE npx vitest run …
    ...pick(process.env, ["S3_BACKUPS_BUCKET", "OBJECT_LOCK_MODE", "OBJECT_LOCK_DAYS"]),
    ...overrides,
  };
}

/** A real API process in-process: real MariaDB, real Temporal connection, real S3, real HTTP + WebSocket. */
export async function startStack(overrides: Partial<Record<keyof Env, string>> = {}, opts: { readiness?: Record<string, () => Promise<void>> } = {}): Promise<TestStack> {
  const config = loadConfig(testEnv(overrides));
  const logs: string[] = [];
  const logger: Logger = createLogger(
    config.logLevel,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(...chunk.toString("utf8").split("\n").filter(Boolean));
        cb();
      },
    }),
  );
  const rt = await createRuntime(config, logger);
  // A test's own checks run in the background like the real ones (and are reported by /readyz).
  await Promise.all(Object.entries(opts.readiness ?? {}).map(([name, run]) => rt.availability.add(name, { run })));
  const app = await startApp({
    config,
    logger,
    services: rt.services,
    events: rt.events.bus,
    limiter: rt.limiter,
    availability: rt.availability,
    stopGracePeriodMs: 200,
  });
  return {
    config,
    rt,
    app,
    client: new ReCloClient({ url: app.graphqlUrl }),
    logs,
    async stop() {
      await app.stop();
      await rt.close();
    },
  };
}

let counter = 0;
/** Unique per test file and call, so parallel test files never collide. */
export function uniqueName(prefix = "user"): string {
  counter += 1;
  return `${prefix}${process.pid}x${Date.now().toString(36)}x${counter}`;
}

export const PASSWORD = "correct horse battery staple";

export interface TestUser {
  id: string;
  email: string;
  username: string;
  token: string;
  client: ReCloClient;
}

export const VERIFY_SUBJECT = /^Verify your e-mail address/;

/** The token of the first link to `path` (e.g. "/verify-email") in a mail. */
export function tokenIn(mail: Pick<Mail, "Text">, path: string): string {
  const link = linksIn(mail).find((l) => new URL(l).pathname === path);
  const token = link && new URL(link).searchParams.get("token");
  if (!token) throw new Error(`no ${path}?token=… link in the mail:\n${mail.Text}`);
  return token;
}

/** Follows the link of the verification mail sent to `email` (waits for it in mailpit), as the user does. */
export async function verifyAddress(client: ReCloClient, email: string): Promise<void> {
  const mail = await waitForMail(email, VERIFY_SUBJECT);
  await client.request(VerifyEmailDocument, { token: tokenIn(mail, "/verify-email") });
}

/**
 * signUp (which answers only `accepted`, never a token), the link of the verification mail, then
 * logIn: what a new user does. `verify: false` leaves the address unverified.
 */
export async function createAccount(
  client: ReCloClient,
  name = uniqueName(),
  password = PASSWORD,
  opts: { verify?: boolean } = {},
): Promise<{ id: string; email: string; username: string; token: string }> {
  const email = `${name}@example.com`;
  const { signUp: accepted } = await client.request(SignUpDocument, { input: { username: name, email, password } });
  if (!accepted.accepted) throw new Error(`signUp not accepted: ${accepted.message}`);
  if (opts.verify !== false) await verifyAddress(client, email);
  const { logIn } = await client.request(LogInDocument, { input: { email, password } });
  return { id: logIn.user.id, email, username: name, token: logIn.token };
}

export async function signUp(stack: TestStack, name = uniqueName(), opts: { verify?: boolean } = {}): Promise<TestUser> {
  const account = await createAccount(stack.client, name, PASSWORD, opts);
  return { ...account, client: stack.client.withToken(account.token) };
}

/** The GraphQL error a request was answered with (any other failure, or a success, fails the test). */
export async function errorOf(p: Promise<unknown>): Promise<GraphQLRequestError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GraphQLRequestError) return err;
    throw err;
  }
  throw new Error("expected a GraphQL error");
}
