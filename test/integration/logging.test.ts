import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, signUp, PASSWORD, type TestStack } from "../helpers/stack";
import { LogInDocument, MeDocument } from "../../src/client/generated/graphql";

describe("structured logs", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ LOG_LEVEL: "trace" });
  });
  afterAll(() => stack.stop());

  it("are JSON lines with a request id and never contain a token or a password", async () => {
    const u = await signUp(stack);
    const { logIn } = await stack.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } });
    await stack.client.withToken(logIn.token).request(MeDocument);
    await stack.client.withToken("rcl_" + "Z".repeat(43)).execute(MeDocument);
    expect(stack.logs.length).toBeGreaterThan(3);
    const parsed = stack.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = parsed.filter((l) => l.msg === "http request");
    expect(requests.length).toBeGreaterThanOrEqual(4);
    for (const r of requests) expect(r.requestId).toMatch(/^[\w.-]+$/);
    const all = stack.logs.join("\n");
    for (const secret of [u.token, logIn.token, PASSWORD, u.token.slice(4, 20)]) expect(all).not.toContain(secret);
  });

  it("redacts secrets even when code logs them by mistake", () => {
    stack.rt.logger.info({ token: "rcl_secret-token-value", input: { password: "hunter2-hunter2" }, headers: { authorization: "Bearer rcl_x" } }, "oops");
    const last = stack.logs.at(-1)!;
    expect(last).not.toContain("secret-token-value");
    expect(last).not.toContain("hunter2");
    expect(last).not.toContain("Bearer rcl_x");
    expect(last).toContain("[redacted]");
  });
});

describe("access log at LOG_LEVEL=info", () => {
  it("logs failures at once and counts routine GraphQL answers into a summary line (written at the latest on shutdown)", async () => {
    // Routine means an answer under 400 that is also faster than ACCESS_LOG_SLOW (default 1 s, logged
    // on its own line when slower): under a loaded CI machine, signing up (argon2) took longer and
    // was counted apart. This test is about routine against refused answers: nothing here is slow.
    const stack = await startStack({ LOG_LEVEL: "info", ACCESS_LOG_SLOW: "60s" });
    let stopped = false;
    try {
      const u = await signUp(stack);
      const ok = `routine-${process.pid}-${Date.now()}`;
      const refused = `refused-${process.pid}-${Date.now()}`;
      const post = (token: string, requestId: string) =>
        fetch(stack.app.graphqlUrl, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "x-request-id": requestId },
          body: JSON.stringify({ query: "{ me { id } }" }),
        }).then(async (res) => ({ status: res.status, cacheControl: res.headers.get("cache-control"), body: await res.text() }));
      const good = await post(u.token, ok);
      expect(good.status).toBe(200);
      expect(good.cacheControl).toBe("no-store");
      expect((await post("rcl_" + "Z".repeat(43), refused)).status).toBe(401);
      await stack.stop();
      stopped = true;
      const parsed = stack.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(parsed.filter((l) => l.msg === "http request" && l.requestId === refused)).toMatchObject([{ level: 30, status: 401, path: "/graphql" }]);
      expect(parsed.filter((l) => l.requestId === ok)).toEqual([]);
      const summaries = parsed.filter((l) => l.msg === "graphql requests");
      expect(summaries).toHaveLength(1);
      // signUp, verifyEmail (the mailed link), logIn and the routine `me` (the refused one has its own line).
      expect(summaries[0]).toMatchObject({ level: 30, requests: 4 });
      expect(summaries[0]!.maxMs).toBeGreaterThan(0);
    } finally {
      if (!stopped) await stack.stop();
    }
  });
});
