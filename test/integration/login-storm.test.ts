import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { startStack, signUp, uniqueName, PASSWORD, type TestStack, type TestUser, errorOf } from "../helpers/stack";
import { LogInDocument, SignUpDocument } from "../../src/client/generated/graphql";
import { users } from "../../src/db/schema";
import { PasswordHasher } from "../../src/auth/password";

/**
 * Issue 14, the login storm: argon2 work goes through one bounded queue (ARGON2_CONCURRENCY
 * running, ARGON2_MAX_WAITING waiting); beyond it logIn and signUp are answered at once with
 * RATE_LIMITED / reason BUSY and retryAfterSeconds, and nothing is counted against the caller's
 * limits. The unknown-e-mail dummy verify takes its place in the same queue.
 */

describe("the hashing queue, through GraphQL", () => {
  let stack: TestStack;
  let user: TestUser;
  beforeAll(async () => {
    stack = await startStack({
      ARGON2_CONCURRENCY: "1",
      ARGON2_MAX_WAITING: "2",
      // Slower hashing (still above OWASP's minimums), so that the unknown-e-mail logins are seen queued.
      ARGON2_MEMORY_KIB: "65536",
      ARGON2_TIME_COST: "4",
      // Two attempts per account: the BUSY answers below would use them up if they were counted.
      LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: "2",
      LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "1000",
      SIGNUP_MAX_PER_ADDRESS: "1000",
    });
    user = await signUp(stack);
  });
  afterAll(() => stack.stop());

  it("beyond the queue, logIn and signUp are answered BUSY at once with the stable code, and nothing is counted against the account", async () => {
    const passwords = stack.rt.services.passwords;
    expect(passwords.stats()).toMatchObject({ concurrency: 1, maxWaiting: 2, running: 0, waiting: 0 });
    // Hold every place (1 slot + 2 waiting), as a burst of logins would.
    const held = [passwords.reserve(), passwords.reserve(), passwords.reserve()];
    try {
      // The real account's login three times (more than its two attempts) and a sign-up.
      const refusals = [
        ...(await Promise.all(Array.from({ length: 3 }, () => errorOf(stack.client.request(LogInDocument, { input: { email: user.email, password: PASSWORD } }))))),
        await errorOf(stack.client.request(SignUpDocument, { input: { username: uniqueName(), email: `${uniqueName()}@example.com`, password: PASSWORD } })),
        await errorOf(stack.client.request(LogInDocument, { input: { email: `${uniqueName()}@example.com`, password: PASSWORD } })),
      ];
      for (const refused of refusals) {
        expect(refused.code).toBe("RATE_LIMITED");
        const extensions = refused.errors[0]!.extensions!;
        expect(extensions.reason).toBe("BUSY");
        expect(extensions.retryAfterSeconds).toBeGreaterThanOrEqual(1);
        expect(refused.message).toMatch(/busy.*try again in \d+ s/);
      }
      // Nobody took or kept a place.
      expect(passwords.stats()).toMatchObject({ running: 0, waiting: 3 });
    } finally {
      for (const place of held) place.release();
    }
    // The BUSY answers cost the account none of its two attempts.
    const wrong = await errorOf(stack.client.request(LogInDocument, { input: { email: user.email, password: "not the password 1" } }));
    expect(wrong.code).toBe("UNAUTHENTICATED");
    const { logIn } = await stack.client.request(LogInDocument, { input: { email: user.email, password: PASSWORD } });
    expect(logIn.user.email).toBe(user.email);
    expect(passwords.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it("a hash made with weaker parameters is upgraded at login, through the same queue", async () => {
    const older = new PasswordHasher({ memoryCost: 19_456, timeCost: 2, parallelism: 1 }, { concurrency: 1, maxWaiting: 0 });
    const account = await signUp(stack);
    await stack.rt.database.db.update(users).set({ passwordHash: await older.hash(PASSWORD) }).where(eq(users.id, account.id));
    const { logIn } = await stack.client.request(LogInDocument, { input: { email: account.email, password: PASSWORD } });
    expect(logIn.user.id).toBe(account.id);
    const [row] = await stack.rt.database.db.select({ passwordHash: users.passwordHash }).from(users).where(eq(users.id, account.id));
    expect(row!.passwordHash).toMatch(/^\$argon2id\$v=19\$m=65536,t=4,p=1\$/);
    expect(stack.rt.services.passwords.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it("an unknown e-mail address's dummy verify runs in the queue like a real one", async () => {
    const passwords = stack.rt.services.passwords;
    // Three logins for addresses that have no account: one dummy verify running, two waiting.
    const unknown = Array.from({ length: 3 }, () => errorOf(stack.client.request(LogInDocument, { input: { email: `${uniqueName()}@example.com`, password: PASSWORD } })));
    await expect.poll(() => passwords.stats(), { timeout: 20_000, interval: 2 }).toMatchObject({ running: 1, waiting: 2 });
    // Answered as usual once their turn came: the same error as a wrong password.
    for (const answer of await Promise.all(unknown)) {
      expect(answer.code).toBe("UNAUTHENTICATED");
      expect(answer.errors[0]!.extensions!.reason).toBe("BAD_CREDENTIALS");
    }
    expect(passwords.stats()).toMatchObject({ running: 0, waiting: 0 });
  });
});
