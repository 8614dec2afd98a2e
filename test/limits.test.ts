import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, signUp, type TestStack, type TestUser } from "./helpers/stack";
import { parse } from "graphql";
import { BackupsDocument } from "../src/client/generated/graphql";
import { openSubscription, withTimeout } from "./helpers/ws";

async function post(stack: TestStack, token: string, body: string) {
  const res = await fetch(stack.app.graphqlUrl, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body });
  return { status: res.status, body: (await res.json()) as { data?: unknown; errors?: { message: string; extensions: Record<string, unknown> }[] } };
}

describe("request limits (rejected before any resolver runs)", () => {
  let stack: TestStack;
  let user: TestUser;
  let resolverCalls = 0;

  beforeAll(async () => {
    stack = await startStack({ MAX_QUERY_DEPTH: "6", MAX_QUERY_COST: "500", MAX_PAGE_SIZE: "50", DEFAULT_PAGE_SIZE: "5", MAX_BODY_BYTES: "4096" });
    user = await signUp(stack);
    for (let i = 0; i < 7; i++) await stack.rt.services.backups.create(user.id, { sourceName: `src-${i}`, imageSize: 1 << 20, kind: "FULL" as never });
    // Count service calls: a rejected request must not reach them.
    const list = stack.rt.services.backups.list.bind(stack.rt.services.backups);
    stack.rt.services.backups.list = (...args) => {
      resolverCalls++;
      return list(...args);
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

  it("answers malformed JSON and invalid GraphQL with BAD_USER_INPUT", async () => {
    const bad = await post(stack, user.token, "{ not json");
    expect(bad.status).toBe(400);
    expect(bad.body.errors![0]!.extensions.code).toBe("BAD_USER_INPUT");
    const invalid = await post(stack, user.token, JSON.stringify({ query: "{ backups { nope } }" }));
    expect(invalid.body.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", reason: "GRAPHQL_VALIDATION_FAILED" });
    expect(JSON.stringify(invalid.body)).not.toContain("stacktrace");
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
});
