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
