import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, signUp, uniqueName, PASSWORD, type TestStack, type TestUser } from "../helpers/stack";
import { getIntrospectionQuery, parse, print, type DocumentNode } from "graphql";
import { like } from "drizzle-orm";
import { gzipSync } from "node:zlib";
import { BackupsDocument, MeDocument } from "../../src/client/generated/graphql";
import { users } from "../../src/db/schema";
import * as generated from "../../src/client/generated/graphql";
import * as consoleGenerated from "../../src/console/client/generated/graphql";
import { analyzeOperation, checkTokens, operationAnalyzer } from "../../src/graphql/limits";
import { AppError } from "../../src/shared/errors";
import { openSubscription, withTimeout } from "../helpers/ws";

type Body = { data?: Record<string, unknown> | null; errors?: { message: string; extensions: Record<string, unknown> }[] };

async function post(stack: TestStack, token: string | undefined, body: string) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const started = performance.now();
  const res = await fetch(stack.app.graphqlUrl, { method: "POST", headers, body });
  const text = await res.text();
  return { status: res.status, ms: performance.now() - started, bytes: text.length, body: JSON.parse(text) as Body };
}

/** L levels of fragments, each spreading the next S times (inside inline fragments): S^L fields once expanded. */
function fragmentBomb(levels: number, spreads: number): string {
  let q = "query Bomb { ...F0 }\n";
  for (let i = 0; i < levels; i++) q += `fragment F${i} on Query { ${Array.from({ length: spreads }, () => `... on Query { ...F${i + 1} }`).join(" ")} }\n`;
  return q + `fragment F${levels} on Query { recoveryTargets { default } }\n`;
}

const aliased = (n: number, selection: string) => Array.from({ length: n }, (_, i) => `a${i}: ${selection}`).join("\n");

describe("request limits (rejected before any resolver runs)", () => {
  let stack: TestStack;
  let user: TestUser;
  let resolverCalls = 0;
  let restorableCalls = 0;

  beforeAll(async () => {
    stack = await startStack({
      MAX_QUERY_DEPTH: "6",
      MAX_QUERY_COST: "500",
      MAX_PAGE_SIZE: "50",
      DEFAULT_PAGE_SIZE: "5",
      MAX_BODY_BYTES: "4096",
      EXPENSIVE_FIELD_COST: "100",
      EXPENSIVE_FIELD_RATE: "3",
      EXPENSIVE_FIELD_WINDOW: "1m",
    });
    user = await signUp(stack);
    for (let i = 0; i < 7; i++) await stack.rt.services.backups.create(user.id, { sourceName: `src-${i}`, imageSize: 1 << 20, kind: "FULL" as never });
    // Count service calls: a rejected request must not reach them.
    const list = stack.rt.services.backups.list.bind(stack.rt.services.backups);
    stack.rt.services.backups.list = (...args) => {
      resolverCalls++;
      return list(...args);
    };
    const restorable = stack.rt.services.backupLifecycle.restorable.bind(stack.rt.services.backupLifecycle);
    stack.rt.services.backupLifecycle.restorable = (...args) => {
      restorableCalls++;
      return restorable(...args);
    };
  });
  afterAll(() => stack.stop());

  it("rejects a query nested deeper than MAX_QUERY_DEPTH", async () => {
    const q = `{ backups { edges { node { parent { parent { parent { id } } } } } } }`;
    const before = resolverCalls;
    const { status, body } = await post(stack, user.token, JSON.stringify({ query: q }));
    expect(status).toBe(400);
    expect(body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "DEPTH", depth: 7, maxDepth: 6 });
    expect(body.data).toBeUndefined();
    expect(resolverCalls).toBe(before);
  });

  it("rejects a query whose estimated cost exceeds MAX_QUERY_COST", async () => {
    // 50 edges × (node with 10 fields + upload 4 fields) > 500
    const q = `{ backups(first: 50) { edges { node { id kind status sourceName imageSize chunkSize chunkCount uploadedBytes createdAt completedAt upload { id status bytesSent chunksSent } } } } }`;
    const before = resolverCalls;
    const { status, body } = await post(stack, user.token, JSON.stringify({ query: q }));
    expect(status).toBe(400);
    expect(body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "COST", maxCost: 500 });
    expect(resolverCalls).toBe(before);
  });

  it("counts variables when estimating page sizes, and rejects pages above MAX_PAGE_SIZE", async () => {
    const q = `query Q($n: Int) { backups(first: $n) { edges { node { id } } } }`;
    const before = resolverCalls;
    const { status, body } = await post(stack, user.token, JSON.stringify({ query: q, variables: { n: 51 } }));
    expect(status).toBe(400);
    expect(body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "PAGE_SIZE", maxPageSize: 50 });
    expect(resolverCalls).toBe(before);
  });

  it("rejects a body larger than MAX_BODY_BYTES with 413 and a typed error", async () => {
    const padding = "x".repeat(5000);
    const { status, body } = await post(stack, user.token, JSON.stringify({ query: `{ me { id } }`, variables: { padding } }));
    expect(status).toBe(413);
    expect(body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "BODY_SIZE", maxBodyBytes: 4096 });
  });

  it("answers a plain JSON POST (served without Express) as the Express path answers the same body (here gzipped): results, refusals and headers", async () => {
    const send = async (body: string, via: "plain" | "express") => {
      const headers: Record<string, string> = { "content-type": "application/json", authorization: `Bearer ${user.token}` };
      if (via === "express") headers["content-encoding"] = "gzip";
      const res = await fetch(stack.app.graphqlUrl, { method: "POST", headers, body: via === "express" ? gzipSync(body) : body });
      const text = await res.text();
      return {
        status: res.status,
        body: JSON.parse(text) as Body,
        type: res.headers.get("content-type"),
        cache: res.headers.get("cache-control"),
        length: Number(res.headers.get("content-length")),
        bytes: Buffer.byteLength(text),
        requestId: res.headers.get("x-request-id"),
      };
    };
    const cases = {
      ok: JSON.stringify({ query: "query B { backups(first: 3) { totalCount edges { node { id sourceName } } } }", operationName: "B" }),
      tooLarge: JSON.stringify({ query: "{ me { id } }", variables: { padding: "x".repeat(5000) } }),
      notJson: "{ not json",
      scalar: '"{ me { id } }"',
      empty: "",
      invalid: JSON.stringify({ query: "{ backups { nope } }" }),
    };
    for (const [name, body] of Object.entries(cases)) {
      const plain = await send(body, "plain");
      const express = await send(body, "express");
      const { requestId: a, ...p } = plain;
      const { requestId: b, ...e } = express;
      expect({ name, ...p }).toEqual({ name, ...e });
      expect(p.length).toBe(p.bytes);
      expect(a).toBeTruthy();
      expect(b).toBeTruthy();
    }
    const ok = await send(cases.ok, "plain");
    expect(ok).toMatchObject({ status: 200, cache: "no-store", type: "application/json; charset=utf-8" });
    expect((ok.body.data as { backups: { totalCount: number } }).backups.totalCount).toBe(7);
    expect((await send(cases.tooLarge, "plain")).status).toBe(413);
    expect((await send(cases.notJson, "plain")).status).toBe(400);
    // Chunked, with no Content-Length to refuse it by: counted as it arrives, refused once over the limit.
    const chunked = async (parts: string[]) => {
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          for (const p of parts) c.enqueue(new TextEncoder().encode(p));
          c.close();
        },
      });
      const res = await fetch(stack.app.graphqlUrl, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${user.token}` }, body, duplex: "half" } as RequestInit);
      return { status: res.status, body: (await res.json()) as Body };
    };
    const over = await chunked(['{"query":"{ me { id } }","variables":{"padding":"', "x".repeat(3000), "x".repeat(3000), '"}}']);
    expect(over.status).toBe(413);
    expect(over.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "BODY_SIZE" });
    const within = await chunked(['{"query":"{ me ', '{ id } }"}']);
    expect(within).toMatchObject({ status: 200, body: { data: { me: { id: user.id } } } });
  });

  it("answers malformed JSON and invalid GraphQL with BAD_USER_INPUT", async () => {
    const bad = await post(stack, user.token, "{ not json");
    expect(bad.status).toBe(400);
    expect(bad.body.errors![0]!.extensions.code).toBe("BAD_USER_INPUT");
    const invalid = await post(stack, user.token, JSON.stringify({ query: "{ backups { nope } }" }));
    expect(invalid.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", reason: "GRAPHQL_VALIDATION_FAILED" });
    expect(JSON.stringify(invalid.body)).not.toContain("stacktrace");
  });

  it("refuses text variables with an unpaired surrogate (JSON's \\ud800) as BAD_USER_INPUT naming the variable, before any resolver runs; a well-formed pair is fine", async () => {
    // Found by the schema fuzzer: grantSupportAccess(note: "\ud800") reached the database, which refused it, and answered INTERNAL.
    const mutation = "mutation G($input: GrantSupportAccessInput!) { grantSupportAccess(input: $input) { id note } }";
    const body = (note: string) => JSON.stringify({ query: mutation, variables: { input: { minutes: 25, note } } }).replace("NOTE", "\\ud800");
    const lone = await post(stack, user.token, body("a NOTE"));
    expect(lone.body.data ?? null).toBeNull();
    expect(lone.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "$.input.note" });
    const before = resolverCalls;
    const listed = await post(stack, user.token, JSON.stringify({ query: "query B($s: String) { backups(first: 1, filter: { sourceName: $s }) { totalCount } }", variables: { s: "x" } }).replace('"x"', '"\\udfff"'));
    expect(listed.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "$.s" });
    expect(resolverCalls).toBe(before);
    const paired = await post(stack, user.token, JSON.stringify({ query: mutation, variables: { input: { minutes: 25, note: "backup \u{1F600} check" } } }));
    expect(paired.body.errors).toBeUndefined();
    expect(paired.body.data).toMatchObject({ grantSupportAccess: { note: "backup \u{1F600} check" } });
  });

  it("pages with first/after, newest first, with totalCount and pageInfo", async () => {
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const { backups }: { backups: { totalCount: number; edges: { cursor: string; node: { id: string; sourceName: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } =
        await user.client.request(BackupsDocument, { first: 3, after });
      expect(backups.totalCount).toBe(7);
      seen.push(...backups.edges.map((e) => e.node.sourceName));
      after = backups.pageInfo.hasNextPage ? backups.pageInfo.endCursor : null;
      pages++;
    } while (after);
    expect(pages).toBe(3);
    expect(seen).toEqual(["src-6", "src-5", "src-4", "src-3", "src-2", "src-1", "src-0"]);
    const { backups: dflt } = await user.client.request(BackupsDocument, {});
    expect(dflt.edges).toHaveLength(5); // DEFAULT_PAGE_SIZE
    const filtered = await user.client.request(BackupsDocument, { filter: { sourceName: "src-2" } });
    expect(filtered.backups.totalCount).toBe(1);
    // Every filter, alone and combined, with and without a cursor (each shape is its own prepared statement).
    const count = async (filter: Record<string, unknown>, first?: number, after?: string | null) => {
      const { backups } = await user.client.request(BackupsDocument, { filter, first, after } as never);
      return { total: backups.totalCount, names: backups.edges.map((e) => e.node.sourceName), next: backups.pageInfo.hasNextPage ? backups.pageInfo.endCursor : null };
    };
    const hourAgo = new Date(Date.now() - 3600_000).toISOString();
    const inAnHour = new Date(Date.now() + 3600_000).toISOString();
    expect((await count({ kind: "FULL" })).total).toBe(7);
    expect((await count({ kind: "INCREMENTAL" })).total).toBe(0);
    expect((await count({ status: "UPLOADING" })).total).toBe(7);
    expect((await count({ status: "DELETED" })).total).toBe(0);
    expect((await count({ createdAfter: hourAgo, createdBefore: inAnHour })).total).toBe(7);
    expect((await count({ createdAfter: inAnHour })).total).toBe(0);
    expect((await count({ createdBefore: hourAgo })).total).toBe(0);
    const firstPage = await count({ kind: "FULL", createdAfter: hourAgo }, 4);
    expect(firstPage).toMatchObject({ total: 7, names: ["src-6", "src-5", "src-4", "src-3"] });
    expect(await count({ kind: "FULL", createdAfter: hourAgo }, 4, firstPage.next)).toMatchObject({ total: 7, names: ["src-2", "src-1", "src-0"], next: null });
    // The total rides on the page's rows; a page with none still counts: past the end, and first: 0.
    const last = await count({}, 1, (await count({}, 6)).next);
    expect(last).toMatchObject({ total: 7, names: ["src-0"], next: null });
    const { backups: oldest } = await user.client.request(BackupsDocument, { first: 1, after: null, filter: { sourceName: "src-0" } });
    expect(await count({}, 3, oldest.edges[0]!.cursor)).toEqual({ total: 7, names: [], next: null });
    expect(await count({ kind: "FULL" }, 0)).toEqual({ total: 7, names: [], next: null });
    expect(await count({ kind: "INCREMENTAL" }, 2, oldest.edges[0]!.cursor)).toEqual({ total: 0, names: [], next: null });
    const bad = await post(stack, user.token, JSON.stringify({ query: `{ backups(after: "bm9wZQ") { totalCount } }` }));
    expect(bad.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "after" });
  });

  it("applies the same limits to subscriptions over WebSocket", async () => {
    const deep = parse(`subscription { backupChanged { parent { parent { parent { parent { parent { parent { id } } } } } } } }`);
    const sub = openSubscription(user.client, deep as never);
    const end = await withTimeout(sub.ended, 5000, "deep subscription rejected");
    const errors = end.error as { extensions: Record<string, unknown> }[];
    expect(errors[0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "DEPTH", maxDepth: 6 });
    await sub.dispose();
  });

  it("prices expensive fields (restorable) at EXPENSIVE_FIELD_COST each, times the page size", async () => {
    // 1 + 10 × (edges 1 + node 1 + id 1 + restorable 100) = 1031 > 500; the same page without restorable costs 41.
    const cheap = await post(stack, user.token, JSON.stringify({ query: `{ backups(first: 10) { edges { node { id sourceName } } } }` }));
    expect(cheap.status).toBe(200);
    expect(cheap.body.errors).toBeUndefined();
    const before = { list: resolverCalls, restorable: restorableCalls };
    const { status, body } = await post(stack, user.token, JSON.stringify({ query: `{ backups(first: 10) { edges { node { id restorable } } } }` }));
    expect(status).toBe(400);
    expect(body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "COST", maxCost: 500 });
    expect(body.errors![0]!.extensions.cost as number).toBeGreaterThan(1000);
    expect({ list: resolverCalls, restorable: restorableCalls }).toEqual(before);
  });

  it("limits operations selecting expensive fields per user (EXPENSIVE_FIELD_RATE), before resolvers run", async () => {
    const other = await signUp(stack);
    const q = JSON.stringify({ query: `{ backups(first: 1) { edges { node { restorable } } } }` });
    for (let i = 0; i < 3; i++) {
      const ok = await post(stack, other.token, q);
      expect(ok.status, JSON.stringify(ok.body)).toBe(200);
      expect(ok.body.errors).toBeUndefined();
    }
    const before = restorableCalls;
    const limited = await post(stack, other.token, q);
    expect(limited.status).toBe(429);
    expect(limited.body.errors![0]!.extensions).toMatchObject({ code: "RATE_LIMITED" });
    expect(limited.body.errors![0]!.extensions.retryAfterSeconds as number).toBeGreaterThan(0);
    expect(restorableCalls).toBe(before);
    // Cheap fields are not affected, and the rate is per user.
    expect((await post(stack, other.token, JSON.stringify({ query: `{ backups(first: 1) { totalCount } }` }))).status).toBe(200);
    expect((await post(stack, user.token, q)).status).toBe(200);
  });
});

describe("abuse limits with the default configuration (checked before any token lookup)", () => {
  let stack: TestStack;
  let user: TestUser;

  beforeAll(async () => {
    stack = await startStack();
    user = await signUp(stack);
  });
  afterAll(() => stack.stop());

  it("answers a fragment bomb in well under a second with a typed COST error, before looking at the token", async () => {
    // 6^8 ≈ 1.7 M fields once expanded: the per-spread walk took seconds; 10^10 would take hours.
    for (const [levels, spreads] of [
      [8, 6],
      [10, 10],
      [30, 10],
    ] as const) {
      const query = fragmentBomb(levels, spreads);
      // A token that does not exist: the limits answer first (400, not 401).
      const { status, ms, body } = await post(stack, "rcl_" + "A".repeat(43), JSON.stringify({ query }));
      expect(status, `${levels}x${spreads}`).toBe(400);
      expect(body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "COST", maxCost: 20000 });
      expect(body.data).toBeUndefined();
      expect(ms, `${levels}x${spreads} answered in ${ms.toFixed(0)} ms`).toBeLessThan(1000);
    }
  });

  it("refuses a document over MAX_QUERY_TOKENS before parsing it", async () => {
    const query = `{ ${"__typename ".repeat(5000)}}`;
    const { status, ms, body } = await post(stack, undefined, JSON.stringify({ query }));
    expect(status).toBe(400);
    expect(body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "TOKENS", maxTokens: 3000 });
    expect(ms).toBeLessThan(1000);
  });

  it("refuses introspection without a token, and an introspection alias bomb with or without one", async () => {
    const small = JSON.stringify({ query: `{ __schema { queryType { name } } }` });
    const anon = await post(stack, undefined, small);
    expect(anon.status).toBe(401);
    expect(anon.body.errors![0]!.extensions.code).toBe("UNAUTHENTICATED");
    expect(anon.body.data).toBeUndefined();
    const anonType = await post(stack, undefined, JSON.stringify({ query: `{ __type(name: "Backup") { fields { name } } }` }));
    expect(anonType.status).toBe(401);

    // 300 aliased __schema: 5.5 MB in 1.4 s before. Now refused at once, token or not.
    const bomb = JSON.stringify({ query: `{ ${aliased(300, "__schema { types { name } }")} }` });
    for (const token of [undefined, user.token]) {
      const { status, ms, bytes, body } = await post(stack, token, bomb);
      expect(status).toBe(400);
      expect(body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT" });
      expect(["COST", "ALIASES"]).toContain(body.errors![0]!.extensions.limit);
      expect(body.data).toBeUndefined();
      expect(bytes).toBeLessThan(2000);
      expect(ms).toBeLessThan(1000);
    }
    // __type is cheap but still counted: aliases are limited.
    const typeBomb = await post(stack, user.token, JSON.stringify({ query: `{ ${aliased(100, `__type(name: "Backup") { name }`)} }` }));
    expect(typeBomb.status).toBe(400);
    expect(typeBomb.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "ALIASES", maxAliases: 30 });

    // Signed in, introspection works, including the full query GraphiQL sends.
    const mine = await post(stack, user.token, small);
    expect(mine.status).toBe(200);
    expect(mine.body.data).toEqual({ __schema: { queryType: { name: "Query" } } });
    const full = await post(stack, user.token, JSON.stringify({ query: getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, schemaDescription: true }) }));
    expect(full.status, JSON.stringify(full.body.errors)).toBe(200);
    expect((full.body.data as { __schema: { types: unknown[] } }).__schema.types.length).toBeGreaterThan(20);
    // __typename is not introspection: anonymous clients may ask for it.
    expect((await post(stack, undefined, JSON.stringify({ query: `{ __typename }` }))).body.data).toEqual({ __typename: "Query" });
  });

  it("refuses 200 aliased signUps (and any second signUp/logIn) before any resolver runs: no account is created", async () => {
    const prefix = uniqueName("bomb");
    const signUpField = (i: number) => `signUp(input: { username: "${prefix}u${i}", email: "${prefix}u${i}@example.com", password: "${PASSWORD}" }) { accepted }`;
    const countAccounts = async () => (await stack.rt.database.db.select({ id: users.id }).from(users).where(like(users.email, `${prefix}%`))).length;

    const bomb = `mutation { ${Array.from({ length: 200 }, (_, i) => `s${i}: ${signUpField(i)}`).join("\n")} }`;
    const big = await post(stack, undefined, JSON.stringify({ query: bomb }));
    expect(big.status).toBe(400);
    expect(big.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT" });
    expect(["MUTATIONS", "TOKENS"]).toContain(big.body.errors![0]!.extensions.limit);
    expect(big.ms).toBeLessThan(1000);

    const two = await post(stack, undefined, JSON.stringify({ query: `mutation { a: ${signUpField(1)} b: ${signUpField(2)} }` }));
    expect(two.status).toBe(400);
    expect(two.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "MUTATIONS", maxMutations: 1 });

    // Through fragments too: counted once per spread.
    const viaFragments = await post(
      stack,
      undefined,
      JSON.stringify({ query: `mutation { ...S ... on Mutation { ...S } } fragment S on Mutation { ${signUpField(3)} }` }),
    );
    expect(viaFragments.status).toBe(400);
    expect(viaFragments.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "MUTATIONS" });

    const mixed = await post(stack, undefined, JSON.stringify({ query: `mutation { ${signUpField(4)} logIn(input: { email: "${user.email}", password: "${PASSWORD}" }) { token } }` }));
    expect(mixed.status).toBe(400);
    expect(mixed.body.errors![0]!.extensions).toMatchObject({ limit: "MUTATIONS" });
    expect(await countAccounts()).toBe(0);

    // One signUp per request still works.
    const one = await post(stack, undefined, JSON.stringify({ query: `mutation { ${signUpField(5)} }` }));
    expect(one.status).toBe(200);
    expect(await countAccounts()).toBe(1);
  });

  it("keeps every document the CLI and the web console send within the default limits, at the largest page", () => {
    // [name, document, the text sent]: the CLI prints its DocumentNodes; the console sends its
    // generated query strings (TypedDocumentString) as they are.
    const documents: [string, DocumentNode, string][] = [
      ...Object.entries(generated)
        .filter(([name, value]) => name.endsWith("Document") && typeof value === "object")
        .map(([name, value]) => [name, value as DocumentNode, print(value as DocumentNode)] as [string, DocumentNode, string]),
      ...Object.entries(consoleGenerated)
        .filter(([name, value]) => name.endsWith("Document") && value instanceof String)
        .map(([name, value]) => [`console ${name}`, parse(String(value)), String(value)] as [string, DocumentNode, string]),
    ];
    expect(documents.filter(([name]) => name.startsWith("console ")).length).toBeGreaterThanOrEqual(15);
    expect(documents.length).toBeGreaterThan(40);
    for (const [name, document, text] of documents) {
      const tokens = checkTokens(text, stack.config.limits.maxTokens);
      expect(tokens instanceof AppError ? { code: tokens.code, ...tokens.details } : "ok", name).toBe("ok");
      const analysis = analyzeOperation(stack.app.schema, document, undefined, { first: stack.config.limits.maxPageSize }, stack.config.limits);
      expect(analysis instanceof AppError ? { code: analysis.code, ...analysis.details } : "ok", name).toBe("ok");
    }
  });

  it("an analysis is kept per document and variables: a repeat is the same answer, other page sizes and refusals are analysed afresh", () => {
    const analyze = operationAnalyzer(stack.app.schema, stack.config.limits);
    const document = parse("query Page($first: Int) { backups(first: $first) { totalCount edges { node { id createdAt } } } }");
    const small = analyze(document, undefined, { first: 5 });
    expect(small).not.toBeInstanceOf(AppError);
    expect(analyze(document, undefined, { first: 5 })).toBe(small);
    expect(Object.isFrozen(small)).toBe(true);
    const large = analyze(document, undefined, { first: stack.config.limits.maxPageSize });
    expect((large as { cost: number }).cost).toBeGreaterThan((small as { cost: number }).cost);
    // Over the page size: refused every time, also after the same document passed.
    for (let i = 0; i < 2; i++) {
      const refused = analyze(document, undefined, { first: stack.config.limits.maxPageSize + 1 });
      expect(refused instanceof AppError ? refused.details : refused).toMatchObject({ limit: "PAGE_SIZE" });
    }
    // An unpaired surrogate in the variables is refused even though the document passed before.
    const bad = analyze(document, undefined, { first: 5, note: "\ud800" });
    expect(bad).toBeInstanceOf(AppError);
    // The same as analysing afresh.
    expect(analyze(document, undefined, { first: 7 })).toEqual(analyzeOperation(stack.app.schema, document, undefined, { first: 7 }, stack.config.limits));
  });

  it("limits root fields per mutation to MAX_MUTATIONS", async () => {
    const u = await signUp(stack);
    const many = await post(stack, u.token, JSON.stringify({ query: `mutation { ${aliased(11, "logOutEverywhere")} }` }));
    expect(many.status).toBe(400);
    expect(many.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "MUTATIONS", maxMutations: 10 });
    // Nothing ran: the token is still valid.
    expect((await u.client.request(MeDocument)).me.id).toBe(u.id);
  });
});

describe("INTROSPECTION=public", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ INTROSPECTION: "public" });
  });
  afterAll(() => stack.stop());

  it("lets anonymous clients introspect, still within the limits", async () => {
    const ok = await post(stack, undefined, JSON.stringify({ query: `{ __schema { queryType { name } } }` }));
    expect(ok.status).toBe(200);
    expect(ok.body.data).toEqual({ __schema: { queryType: { name: "Query" } } });
    const bomb = await post(stack, undefined, JSON.stringify({ query: `{ ${aliased(300, "__schema { types { name } }")} }` }));
    expect(bomb.status).toBe(400);
    expect(bomb.body.errors![0]!.extensions.code).toBe("BAD_USER_INPUT");
  });
});
