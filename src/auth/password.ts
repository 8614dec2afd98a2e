import argon2 from "argon2";
import { badInput } from "../shared/errors";

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

export class PasswordHasher {
  /** A hash of a random password, verified against when the e-mail is unknown so timing does not tell. */
  private dummy: Promise<string>;

  constructor(private readonly params: Argon2Params) {
    this.dummy = this.hash(`dummy-${Math.random()}-${Date.now()}`);
  }

  hash(password: string): Promise<string> {
    return argon2.hash(password, { type: argon2.argon2id, ...this.params });
  }

  async verify(hash: string | undefined, password: string): Promise<boolean> {
    try {
      return await argon2.verify(hash ?? (await this.dummy), password);
    } catch {
      return false;
    }
  }

  /** True when the stored hash used weaker parameters than configured (rehash on next login). */
  needsRehash(hash: string): boolean {
    return argon2.needsRehash(hash, { ...this.params });
  }
}
