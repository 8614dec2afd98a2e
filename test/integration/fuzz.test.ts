import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLOutputType,
} from "graphql";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import { newId } from "../../src/shared/ids";
import { instances, recoveries } from "../../src/db/schema";

/**
 * Schema-driven fuzzing (issue 10): every query and mutation field of the executable schema, with
 * hostile argument values generated from the argument types (huge, negative, fractional, unicode,
 * NUL bytes, lone surrogates, wrong types, deeply nested objects, other users' ids), sent anonymous
 * and signed in, as variables and as inline literals. Whatever comes back: never an HTTP 5xx, never
 * INTERNAL, never a stack trace, a source path or SQL.
 *
 * Runs are bounded (RUNS per field, no shrinking: a failure prints its seed and counterexample) so the
 * file stays well under a minute. `logOut` and `logOutEverywhere` take no arguments, so there is
 * nothing to generate; they would also end the signed-in session the other runs use, so they are
 * covered by a targeted case with a session of their own. Subscriptions are not in this file (they
 * need WebSocket sessions; see websocket.test.ts).
 */

const RUNS = 24;
const NO_ARGUMENTS_TO_FUZZ = new Set(["logOut", "logOutEverywhere"]);

// ---------------------------------------------------------------- hostile values

const hostileConstants = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "\udfff\ud800",
  "\u202eevil",
  "\ufeff",
  "'; DROP TABLE users; --",
  '" OR 1=1 --',
  "%",
  "_",
  "\\",
  "../../../../../etc/passwd",
  "${jndi:ldap://127.0.0.1/x}",
  "<script>alert(1)</script>",
  "null",
  "NaN",
  "-1",
  "1e309",
  "0x7fffffff",
  "🙂".repeat(300),
  "𝕏".repeat(70),
  "a@b.co",
  "x".repeat(256) + "@example.com",
  "0".repeat(64),
  "f".repeat(64),
];

const hostileString: fc.Arbitrary<string> = fc.oneof(
  // Plain names and handles too, so that generated inputs get past validation into the services.
  { weight: 3, arbitrary: fc.stringMatching(/^[a-z][a-z0-9.-]{0,20}$/) },
  { weight: 4, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 3, arbitrary: fc.constantFrom(...hostileConstants) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 300 }) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("a", "\u0000", "é", "🙂", "'"), fc.integer({ min: 256, max: 120_000 })).map(([c, n]) => c.repeat(n)) },
  { weight: 1, arbitrary: fc.stringMatching(/^[0-9a-f]{64}$/) },
  { weight: 1, arbitrary: fc.emailAddress() },
);

/** Nested objects or lists, up to 1500 levels. */
const deeplyNested: fc.Arbitrary<unknown> = fc.tuple(fc.integer({ min: 20, max: 1500 }), fc.boolean()).map(([depth, asList]) => {
  let v: unknown = "x";
  for (let i = 0; i < depth; i++) v = asList ? [v] : { a: v };
  return v;
});

const wrongType: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  hostileString,
  fc.array(fc.integer(), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.integer(), { maxKeys: 3 }),
  deeplyNested,
);

const hugeNumbers = [0, -1, 1.5, 8 * 1024 * 1024, -0.5, 2 ** 31 - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 32, 2 ** 40, 40 * 2 ** 40, 64 * 2 ** 40, 2 ** 53 - 1, 2 ** 53, -(2 ** 53 - 1), 1e21, 1e308, -1e308];

/** Well-formed values for a few input field names, half of the time, so that runs get past validation. */
const plausible: Record<string, fc.Arbitrary<string>> = {
  email: fc.emailAddress(),
  username: fc.stringMatching(/^[a-z][a-z0-9_-]{2,20}$/),
  sourceName: fc.stringMatching(/^[a-z][a-z0-9.-]{0,30}$/),
  password: fc.string({ minLength: 12, maxLength: 40 }),
  sha256: fc.stringMatching(/^[0-9a-f]{64}$/),
  allowedCidr: fc.constantFrom("203.0.113.0/24", "0.0.0.0/0", "10.0.0.1/32", "::/0", "300.1.1.1/8"),
};

function scalarValue(name: string, ids: fc.Arbitrary<string>, fieldName: string): fc.Arbitrary<unknown> {
  switch (name) {
    case "String":
      return plausible[fieldName] ? fc.oneof(plausible[fieldName], hostileString) : hostileString;
    case "ID":
      return ids;
    case "Int":
      return fc.oneof({ weight: 3, arbitrary: fc.integer({ min: -3, max: 120 }) }, { weight: 1, arbitrary: fc.constantFrom(...hugeNumbers) }, { weight: 1, arbitrary: fc.integer() });
    case "Float":
      return fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(...hugeNumbers));
    case "SafeInt":
      return fc.oneof(fc.integer({ min: -3, max: 100 * 1024 * 1024 }), fc.constantFrom(...hugeNumbers), fc.maxSafeInteger(), fc.maxSafeNat());
    case "Boolean":
      return fc.boolean();
    case "DateTimeISO":
      return fc.oneof(
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        fc.constantFrom("0000-01-01T00:00:00Z", "0999-12-31T23:59:59Z", "9999-12-31T23:59:59.999Z", "+275760-09-13T00:00:00.000Z", "-271821-04-20T00:00:00.000Z", "2024-02-30T00:00:00Z", "1970-01-01T00:00:00Z", "2038-01-19T03:14:08Z"),
        hostileString,
      );
    default:
      return fc.oneof(hostileString, wrongType);
  }
}

const jsonBytes = (v: unknown) => Math.max(1, Buffer.byteLength(JSON.stringify(v) ?? "null"));

/** A value for an input type: mostly well-typed (to reach the resolvers), sometimes null or of the wrong type. */
function valueFor(type: GraphQLInputType, ids: fc.Arbitrary<string>, name: string, depth = 0): fc.Arbitrary<unknown> {
  if (isNonNullType(type)) {
    return fc.oneof({ weight: 30, arbitrary: valueFor(type.ofType, ids, name, depth) }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: wrongType });
  }
  let inner: fc.Arbitrary<unknown>;
  if (isListType(type)) {
    const item = valueFor(type.ofType, ids, name, depth + 1);
    inner = fc.oneof(
      { weight: 6, arbitrary: fc.array(item, { maxLength: 6 }) },
      // Long lists, kept under MAX_BODY_BYTES (bigger bodies are refused before parsing: limits.test.ts).
      { weight: 1, arbitrary: fc.tuple(item, fc.integer({ min: 500, max: 5_000 })).map(([v, n]) => Array<unknown>(Math.min(n, Math.floor(800_000 / jsonBytes(v)))).fill(v)) },
      { weight: 1, arbitrary: item },
    );
  } else if (isInputObjectType(type)) {
    const fields = Object.values(type.getFields());
    const model = Object.fromEntries(fields.map((f) => [f.name, valueFor(f.type, ids, f.name, depth + 1)]));
    inner = fc.oneof(
      { weight: 12, arbitrary: fc.record(model) },
      { weight: 1, arbitrary: fc.record(model, { requiredKeys: [] }) },
      { weight: 1, arbitrary: fc.tuple(fc.record(model), deeplyNested).map(([r, extra]) => ({ ...r, unknownField: extra })) },
    );
  } else if (isEnumType(type)) {
    inner = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...type.getValues().map((v) => v.name)) }, { weight: 1, arbitrary: hostileString });
  } else if (isScalarType(type)) {
    inner = scalarValue(type.name, ids, name);
  } else {
    inner = wrongType;
  }
  return fc.oneof({ weight: 20, arbitrary: inner }, { weight: 2, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: wrongType });
}

// ---------------------------------------------------------------- documents

/** Every argument-free field, leaves at once, objects up to `depth` levels down. */
function selection(type: GraphQLOutputType, depth: number): string {
  const named = getNamedType(type);
  if (!isObjectType(named)) return "";
  const parts = ["__typename"];
  for (const field of Object.values(named.getFields())) {
    if (field.args.some((a) => isNonNullType(a.type))) continue;
    const leaf = getNamedType(field.type);
    if (isScalarType(leaf) || isEnumType(leaf)) parts.push(field.name);
    else if (depth > 0 && isObjectType(leaf)) parts.push(`${field.name} ${selection(field.type, depth - 1)}`);
  }
  return `{ ${parts.join(" ")} }`;
}

const NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;

/** A GraphQL literal for any JSON value (enum names bare when the type is an enum). */
function literal(value: unknown, type: GraphQLInputType): string {
  const named = getNamedType(type);
  if (value === null || value === undefined) return "null";
  if (typeof value === "string") return isEnumType(named) && NAME.test(value) ? value : JSON.stringify(value);
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "null";
  if (typeof value === "boolean") return String(value);
  const itemType = isNonNullType(type) ? type.ofType : type;
  if (Array.isArray(value)) return `[${value.map((v) => literal(v, isListType(itemType) ? itemType.ofType : itemType)).join(", ")}]`;
  const fields = isInputObjectType(named) ? named.getFields() : {};
  return `{ ${Object.entries(value as Record<string, unknown>)
    .filter(([k]) => NAME.test(k))
    .map(([k, v]) => `${k}: ${literal(v, fields[k]?.type ?? named)}`)
    .join(", ")} }`;
}

interface Case {
  operation: "query" | "mutation";
  field: GraphQLField<unknown, unknown>;
  values: Record<string, unknown>;
  inline: boolean;
  signedIn: boolean;
}

function document(c: Case): { query: string; variables: Record<string, unknown> } {
  const args = c.field.args.filter((a) => c.values[a.name] !== undefined);
  const sel = selection(c.field.type, 2);
  if (c.inline) {
    const list = args.map((a) => `${a.name}: ${literal(c.values[a.name], a.type)}`).join(", ");
    return { query: `${c.operation} Fuzz { ${c.field.name}${list ? `(${list})` : ""} ${sel} }`, variables: {} };
  }
  const decl = args.map((a, i) => `$v${i}: ${String(a.type)}`).join(", ");
  const use = args.map((a, i) => `${a.name}: $v${i}`).join(", ");
  return {
    query: `${c.operation} Fuzz${decl ? `(${decl})` : ""} { ${c.field.name}${use ? `(${use})` : ""} ${sel} }`,
    variables: Object.fromEntries(args.map((a, i) => [`v${i}`, c.values[a.name]])),
  };
}

// ---------------------------------------------------------------- what must never come back

const LEAKS: [string, RegExp][] = [
  ["a stack trace", /stacktrace|\n\s+at .+[:(]\d+|\bat (?:async )?[\w.<>]+ \(/],
  ["a source path", /\/work\/|node_modules|\.ts:\d+|\.js:\d+/],
  ["SQL", /Failed query|sqlMessage|sqlState|\bER_[A-Z_]+\b|\bparams: /],
];

function checkResponse(c: Case, status: number, text: string): void {
  const where = `${c.operation} ${c.field.name} (${c.signedIn ? "signed in" : "anonymous"}, ${c.inline ? "inline" : "variables"})`;
  expect(status, `${where}: HTTP ${status}\n${text.slice(0, 2000)}`).toBeLessThan(500);
  let body: { errors?: { message: string; extensions?: Record<string, unknown> }[] };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error(`${where}: HTTP ${status}, not JSON: ${text.slice(0, 500)}`);
  }
  for (const error of body.errors ?? []) {
    const shown = JSON.stringify(error).slice(0, 2000);
    expect(error.extensions?.code, `${where}: ${shown}`).toBeDefined();
    expect(error.extensions?.code, `${where}: ${shown}`).not.toBe("INTERNAL");
    // Error texts may echo the (generated) input, so look for leaks in the error without it.
    const withoutEcho = JSON.stringify({ message: error.message.replace(/"(?:[^"\\]|\\.)*"/g, '""'), extensions: error.extensions });
    for (const [what, re] of LEAKS) expect(withoutEcho, `${where}: ${what} in ${shown}`).not.toMatch(re);
  }
}

// ---------------------------------------------------------------- the test

describe("schema-driven fuzzing of every query and mutation", () => {
  let stack: TestStack;
  let attacker: TestUser;
  let victim: TestUser;
  let ids: fc.Arbitrary<string>;

  beforeAll(async () => {
    // Its own task queue, on which no worker listens: nothing a fuzzed mutation might start would run.
    stack = await startStack({ TEMPORAL_TASK_QUEUE: `fuzz-${process.pid}-${Date.now()}`, LOG_LEVEL: "fatal" });
    [attacker, victim] = await Promise.all([signUp(stack), signUp(stack)]);
    const s = stack.rt.services;
    // The victim's objects: every id-taking field must treat them exactly like ids that do not exist.
    const backup = await s.backups.create(victim.id, { sourceName: "victim-server", imageSize: 64 * 1024 * 1024, kind: "FULL" as never });
    const [upload] = (await s.uploads.list(victim.id, { first: 1 })).edges.map((e) => e.node.id);
    const [session] = (await s.sessions.list(victim.id, { first: 1 })).edges.map((e) => e.node.id);
    const now = new Date();
    const recoveryId = newId();
    await stack.rt.database.db.insert(recoveries).values({ id: recoveryId, userId: victim.id, backupId: backup.id, target: "LOCAL", state: "CANCELLED", workflowId: `fuzz-${recoveryId}`, createdAt: now, updatedAt: now });
    const instanceId = newId();
    await stack.rt.database.db
      .insert(instances)
      .values({ id: instanceId, userId: victim.id, recoveryId, provider: "LOCAL", providerId: `fuzz-${instanceId}`, name: "victim-vm", state: "STOPPED", createdAt: now, updatedAt: now });
    const victimIds = [backup.id, upload!, session!, recoveryId, instanceId, victim.id];
    // The attacker's own backup (UPLOADING), so that owner-side paths run too.
    const own = await s.backups.create(attacker.id, { sourceName: "own-server", imageSize: 16 * 1024 * 1024, kind: "FULL" as never });
    ids = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...victimIds) }, { weight: 1, arbitrary: fc.constant(own.id) }, { weight: 2, arbitrary: fc.uuid() }, { weight: 2, arbitrary: hostileString });
  });
  afterAll(() => stack?.stop());

  const post = async (body: unknown, token?: string) => {
    const res = await fetch(stack.app.graphqlUrl, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };

  it("never answers 5xx, INTERNAL, a stack trace, a source path or SQL", async () => {
    const schema = stack.app.schema;
    const roots = [
      ["query", schema.getQueryType()],
      ["mutation", schema.getMutationType()],
    ] as const;
    const fuzzed: string[] = [];
    for (const [operation, root] of roots) {
      for (const field of Object.values(root!.getFields())) {
        if (NO_ARGUMENTS_TO_FUZZ.has(field.name)) continue;
        fuzzed.push(field.name);
        const model = Object.fromEntries(field.args.map((a: GraphQLArgument) => [a.name, valueFor(a.type, ids, a.name)]));
        const values = fc.oneof({ weight: 10, arbitrary: fc.record(model) }, { weight: 1, arbitrary: fc.record(model, { requiredKeys: [] }) });
        const arb = fc.record({ values, inline: fc.boolean(), signedIn: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }) });
        await fc.assert(
          fc.asyncProperty(arb, async ({ values, inline, signedIn }) => {
            const c: Case = { operation, field, values, inline, signedIn };
            const body = document(c);
            // Bodies over MAX_BODY_BYTES are refused before parsing (413; limits.test.ts): not generated here.
            fc.pre(Buffer.byteLength(JSON.stringify(body)) < stack.config.http.maxBodyBytes);
            const { status, text } = await post(body, signedIn ? attacker.token : undefined);
            checkResponse(c, status, text);
          }),
          { numRuns: field.args.length ? RUNS : 2, endOnFailure: true },
        );
      }
    }
    // Nothing skipped silently: every root field except the two named above was fuzzed.
    const all = roots.flatMap(([, root]) => Object.keys(root!.getFields()));
    expect(fuzzed.sort()).toEqual(all.filter((f) => !NO_ARGUMENTS_TO_FUZZ.has(f)).sort());
    expect(fuzzed.length).toBeGreaterThanOrEqual(25);
  }, 120_000);

  it("logOut and logOutEverywhere (no arguments) answer cleanly with junk around them, on a session of their own", async () => {
    const other = await signUp(stack);
    for (const body of [
      { query: "mutation { logOut }", variables: { junk: "\u0000".repeat(10) } },
      { query: 'mutation { logOut(extra: "x") }' },
      { query: "mutation { logOutEverywhere }", variables: [] },
      { query: "mutation { logOutEverywhere }" },
      { query: "mutation { logOut }" },
    ]) {
      const { status, text } = await post(body, other.token);
      checkResponse({ operation: "mutation", field: stack.app.schema.getMutationType()!.getFields().logOut!, values: {}, inline: true, signedIn: true }, status, text);
    }
  });

  it("the other user's objects stay untouched", async () => {
    const s = stack.rt.services;
    const list = await s.backups.list(victim.id, { first: 10 });
    expect(list.edges.map((e) => e.node.status)).toEqual(["UPLOADING"]);
    const sessions = await s.sessions.list(victim.id, { first: 10 });
    expect(sessions.edges.every((e) => e.node.revokedAt === null)).toBe(true);
  });
});
