import { describe, expect, it } from "vitest";
import { parse } from "graphql";
import { DocumentCache, UserConnections } from "../../src/server/ws-limits";

describe("UserConnections: a user's open operations, from each connection's own bookkeeping", () => {
  it("counts over every connection of the user only, follows operations as they open and end, and stops counting past the limit asked about", () => {
    const users = new UserConnections();
    const a1 = { subscriptions: {} as Record<string, unknown> };
    const a2 = { subscriptions: {} as Record<string, unknown> };
    const b = { subscriptions: { x: 1 } as Record<string, unknown> };
    users.add("a", a1);
    users.add("a", a2);
    users.add("b", b);
    expect(users.operations("a")).toBe(0);
    for (let i = 0; i < 5; i++) a1.subscriptions[`s${i}`] = i;
    for (let i = 0; i < 4; i++) a2.subscriptions[`t${i}`] = i;
    expect(users.operations("a")).toBe(9);
    expect(users.operations("b")).toBe(1);
    expect(users.operations("nobody")).toBe(0);
    // Asked against a limit of 3: it stops at 4 (enough to tell the limit is exceeded), whatever the total.
    expect(users.operations("a", 3)).toBe(4);
    expect(users.operations("a", 9)).toBe(9);
    delete a1.subscriptions.s0;
    expect(users.operations("a", 100)).toBe(8);
    users.remove("a", a2);
    expect(users.operations("a")).toBe(4);
    users.remove("a", a1);
    expect(users.operations("a")).toBe(0);
  });
});

describe("DocumentCache: parsed documents by query text, bounded by bytes, least recently used out first", () => {
  it("hands out the one cached document and its own copy of the text, evicts the least recently used, never keeps a document over an eighth of the budget", () => {
    const q = (n: number) => `subscription S${n} { recoveryProgress(id: "r${n}") { id version } }`;
    const size = DocumentCache.estimate(q(1), 12);
    const cache = new DocumentCache(size * 8 + 1);
    for (let i = 0; i < 8; i++) cache.set(q(i), parse(q(i)), 12);
    expect(cache.size).toBe(8);
    const first = cache.entry(q(0))!;
    expect(first.query).toBe(q(0));
    expect(cache.entry(q(0))?.document).toBe(first.document); // the same parsed object every time
    cache.set(q(8), parse(q(8)), 12); // over budget: the least recently used (1, since 0 was just read) goes
    expect(cache.entry(q(1))?.document).toBeUndefined();
    expect(cache.entry(q(0))?.document).toBe(first.document);
    expect(cache.bytes).toBeLessThanOrEqual(cache.maxBytes);
    const big = `{ ${"a ".repeat(2000)}}`;
    cache.set(big, parse("{ a }"), 2000);
    expect(cache.entry(big)).toBeUndefined();
  });
});
