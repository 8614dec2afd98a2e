import readline from "node:readline";
import os from "node:os";
import { parseArgs } from "node:util";
import { eq } from "drizzle-orm";
import { loadConfig } from "./config";
import { createDatabase } from "./db/client";
import { and, isNull } from "drizzle-orm";
import { sessions, USER_ROLES, users, type UserRole, type UserRow } from "./db/schema";
import { boundedEmail, boundedPassword, boundedUsername, EMAIL } from "./auth/auth.service";
import { checkPasswordPolicy, PasswordHasher } from "./auth/password";
import { AuditService } from "./support/audit.service";
import { AppError } from "./shared/errors";
import { newId } from "./shared/ids";

/**
 * `npm run admin -- …`: roles, on the server only (issue 17). The API never makes a SUPPORT or an
 * ADMIN account; whoever can run this on the server (with its database settings) can.
 *
 *   create --email E [--username U] [--role ADMIN|SUPPORT]   a new, verified account with that role
 *                                                             (the password: RECLO_PASSWORD, else the
 *                                                             first line of stdin)
 *   set-role --email E --role CUSTOMER|SUPPORT|ADMIN         promote or demote an existing account
 *                                                             (its sessions are logged out: the new
 *                                                             role holds from its next login)
 *
 * Each is written to the audit log (actor: none, detail.by: the server's OS user).
 */
const USAGE = `usage:
  npm run admin -- create --email <address> [--username <name>] [--role ADMIN|SUPPORT]
  npm run admin -- set-role --email <address> --role CUSTOMER|SUPPORT|ADMIN
The password for create is read from RECLO_PASSWORD, else from the first line of stdin.`;

class Usage extends Error {}

function role(raw: string | undefined, fallback?: UserRole): UserRole {
  const r = (raw ?? fallback)?.toUpperCase();
  if (!r || !(USER_ROLES as readonly string[]).includes(r)) throw new Usage(`--role must be one of ${USER_ROLES.join(", ")}`);
  return r as UserRole;
}

async function readPassword(): Promise<string> {
  if (process.env.RECLO_PASSWORD) return process.env.RECLO_PASSWORD;
  if (process.stdin.isTTY) process.stderr.write("Password (echoed; or set RECLO_PASSWORD): ");
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  try {
    for await (const line of rl) return line;
    return "";
  } finally {
    rl.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== "create" && command !== "set-role") throw new Usage(command ? `unknown command ${command}` : "a command is needed");
  const { values } = parseArgs({ args: rest, options: { email: { type: "string" }, username: { type: "string" }, role: { type: "string" } }, strict: true });
  if (!values.email) throw new Usage("--email is needed");
  const email = boundedEmail(values.email);
  if (!EMAIL.test(email)) throw new Usage("--email is not a valid e-mail address");
  const config = loadConfig();
  const database = createDatabase(config.database.url, 1);
  const audit = new AuditService(database.db);
  const by = { by: "npm run admin", osUser: os.userInfo().username, host: os.hostname() };
  try {
    const [existing] = await database.db.select().from(users).where(eq(users.email, email)).limit(1);
    if (command === "set-role") {
      const to = role(values.role);
      if (!existing) throw new Usage(`no account has the address ${email}`);
      if (existing.role !== to) {
        const now = new Date();
        await database.db.update(users).set({ role: to, updatedAt: now }).where(eq(users.id, existing.id));
        // The account's sessions end (the API stops accepting them within SESSION_CACHE_TTL): the
        // new role holds from its next login, and a demoted account keeps no session of the old one.
        await database.db
          .update(sessions)
          .set({ revokedAt: now })
          .where(and(eq(sessions.userId, existing.id), isNull(sessions.revokedAt)));
        await audit.record({ userId: existing.id, actor: null, action: "admin.set_role", target: `User:${existing.id}`, detail: { from: existing.role, to, sessionsRevoked: true, ...by } });
      }
      console.log(`${existing.username} <${email}> is ${to}${existing.role === to ? " (unchanged)" : ` (was ${existing.role}; its sessions were logged out)`}`);
      return 0;
    }
    const to = role(values.role, "ADMIN");
    if (existing) throw new Usage(`${email} already has an account (${existing.role}); change its role with set-role`);
    const username = boundedUsername(values.username ?? email.split("@")[0]!.replace(/[^A-Za-z0-9._-]/g, "").padEnd(3, "0"));
    const password = await readPassword();
    boundedPassword(password);
    checkPasswordPolicy(password, { username, email });
    const hasher = new PasswordHasher(config.auth.argon2, config.auth.hashQueue);
    const now = new Date();
    const user: UserRow = { id: newId(), username, email, passwordHash: await hasher.hash(password), emailVerifiedAt: now, role: to, createdAt: now, updatedAt: now };
    await database.db.insert(users).values(user);
    await audit.record({ userId: user.id, actor: null, action: "admin.create_user", target: `User:${user.id}`, detail: { role: to, ...by } });
    console.log(`created ${to} ${username} <${email}> (${user.id})`);
    return 0;
  } finally {
    await database.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof Usage) console.error(`${err.message}\n${USAGE}`);
    else if (err instanceof AppError) console.error(err.message);
    else console.error(err instanceof Error ? err.message : err);
    process.exit(err instanceof Usage ? 2 : 1);
  },
);
