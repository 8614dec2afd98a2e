import { randomBytes } from "node:crypto";
import argon2 from "argon2";
import { BoundedQueue, type QueueStats } from "../shared/bounded-queue";
import { badInput, busy } from "../shared/errors";

export interface Argon2Params {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 128;

const COMMON = new Set([
  "password1234", "123456789012", "qwertyuiopas", "passwordpassword", "letmein12345", "iloveyou1234",
  "administrator", "welcome12345", "changeme1234", "qwerty123456", "111111111111", "abcdefghijkl",
]);

/**
 * Password policy (NIST SP 800-63B / OWASP: length over composition rules): 12–128 characters,
 * not all one character, not a well-known password, and not containing the username or the
 * e-mail's local part. Throws BAD_USER_INPUT naming the rule that failed.
 */
export function checkPasswordPolicy(password: string, ctx: { username?: string; email?: string } = {}): void {
  const rule = (message: string) => badInput(`Password rejected: ${message}`, { field: "password" });
  if ([...password].length < PASSWORD_MIN_LENGTH) throw rule(`use at least ${PASSWORD_MIN_LENGTH} characters`);
  if ([...password].length > PASSWORD_MAX_LENGTH) throw rule(`use at most ${PASSWORD_MAX_LENGTH} characters`);
  if (new Set(password).size < 4) throw rule("use more than three different characters");
  const lower = password.toLowerCase();
  if (COMMON.has(lower)) throw rule("this is a commonly used password");
  const username = ctx.username?.toLowerCase();
  if (username && username.length >= 3 && lower.includes(username)) throw rule("it must not contain your username");
  const local = ctx.email?.split("@")[0]?.toLowerCase();
  if (local && local.length >= 3 && lower.includes(local)) throw rule("it must not contain your e-mail address");
}

export interface HashQueueLimits {
  /** At most this many argon2 operations run at once (each on a libuv thread-pool thread). */
  concurrency: number;
  /** At most this many more wait for one; the next is refused with BUSY. */
  maxWaiting: number;
}

/** A place in the hashing queue, taken before the caller spends anything else (see PasswordHasher.reserve). */
export interface HashPlace {
  hash(password: string): Promise<string>;
  verify(hash: string | undefined, password: string): Promise<boolean>;
  /** Gives the place back unused (no-op once used). */
  release(): void;
}

/**
 * argon2id hashing through one bounded queue: every operation (logIn's verify, including the dummy
 * verify for an unknown e-mail address, signUp's hash, the rehash after a login) waits for one of
 * `concurrency` slots; when `maxWaiting` more are already waiting, it is refused at once with
 * RATE_LIMITED / reason BUSY and a retryAfterSeconds (nothing done, nothing counted). Unbounded,
 * a login storm put argon2 on every libuv thread: on 2 cores that starved the event loop (every
 * other request) of CPU, and the waits grew without limit.
 */
export class PasswordHasher {
  /**
   * Verified against when the e-mail address is unknown, so that timing does not tell which
   * accounts exist. A well-formed argon2id hash with the configured parameters, a random salt and
   * a random digest: verifying it costs exactly what verifying a real hash with these parameters
   * costs (argon2 recomputes the digest from the parameters in the string), and no password
   * matches it. Nothing is hashed to make it.
   */
  private readonly dummy: string;
  private readonly queue: BoundedQueue;

  constructor(
    private readonly params: Argon2Params,
    limits: HashQueueLimits = { concurrency: 1, maxWaiting: 32 },
  ) {
    const b64 = (bytes: number) => randomBytes(bytes).toString("base64").replace(/=+$/, "");
    this.dummy = `$argon2id$v=19$m=${params.memoryCost},t=${params.timeCost},p=${params.parallelism}$${b64(16)}$${b64(32)}`;
    this.queue = new BoundedQueue({ ...limits, refuse: busy, initialEstimateMs: 100 });
  }

  /**
   * Takes a place in the queue now, or throws BUSY: callers reserve before rate-limit counters
   * and queries, so that a refusal costs the client none of its attempts.
   */
  reserve(): HashPlace {
    const place = this.queue.reserve();
    return {
      hash: (password) => place.run(() => this.argon2Hash(password)),
      verify: (hash, password) => place.run(() => this.argon2Verify(hash ?? this.dummy, password)),
      release: () => place.release(),
    };
  }

  /** A refusal (BUSY) is a rejected promise, like any failure. */
  async hash(password: string): Promise<string> {
    return this.reserve().hash(password);
  }

  /** False for a wrong password, an unknown account (`hash` undefined: the dummy) or an unreadable hash. */
  async verify(hash: string | undefined, password: string): Promise<boolean> {
    return this.reserve().verify(hash, password);
  }

  /** True when the stored hash used weaker parameters than configured (rehash on next login). */
  needsRehash(hash: string): boolean {
    return argon2.needsRehash(hash, { ...this.params });
  }

  stats(): QueueStats {
    return this.queue.stats();
  }

  private argon2Hash(password: string): Promise<string> {
    return argon2.hash(password, { type: argon2.argon2id, ...this.params });
  }

  private async argon2Verify(hash: string, password: string): Promise<boolean> {
    try {
      return await argon2.verify(hash, password);
    } catch {
      // A stored hash argon2 cannot read (not a PHC string) matches no password.
      return false;
    }
  }
}
