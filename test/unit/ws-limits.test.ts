import { describe, expect, it } from "vitest";
import { UserConnections } from "../../src/server/ws-limits";

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
