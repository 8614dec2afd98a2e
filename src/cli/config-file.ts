import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Where `reclo` talks to when nothing else says so. */
export const DEFAULT_URL = "http://127.0.0.1:4000/graphql";

/** `<configDir>/config.json`: the server and the session of `reclo login`. */
export interface CliConfig {
  url?: string;
  token?: string;
  /** An agent key (rak_…, issue 18): what `reclo agent install` writes for the agent instead of a session token. */
  agentKey?: string;
  email?: string;
  expiresAt?: string;
}

/** The resume record of an unfinished backup: `<configDir>/state/<key>.json`. */
export interface ResumeState {
  backupId: string;
  imagePath: string;
  size: number;
  mtimeMs: number;
}

type Env = NodeJS.ProcessEnv;

/** `RECLO_CONFIG_DIR`, else `$XDG_CONFIG_HOME/reclo`, else `~/.config/reclo`. */
export function configDir(env: Env = process.env): string {
  if (env.RECLO_CONFIG_DIR) return path.resolve(env.RECLO_CONFIG_DIR);
  if (env.XDG_CONFIG_HOME) return path.join(path.resolve(env.XDG_CONFIG_HOME), "reclo");
  return path.join(os.homedir(), ".config", "reclo");
}

export function configPath(dir: string): string {
  return path.join(dir, "config.json");
}

/** The saved configuration; `{}` when there is none. A file that is not JSON is an error (never silently overwritten). */
export function readConfig(dir: string): CliConfig {
  const file = configPath(dir);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${file} is not valid JSON; fix or delete it`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error(`${file} must hold a JSON object`);
  const o = parsed as Record<string, unknown>;
  const str = (k: string) => (typeof o[k] === "string" && o[k] !== "" ? (o[k] as string) : undefined);
  const cfg: CliConfig = {};
  if (str("url")) cfg.url = str("url");
  if (str("token")) cfg.token = str("token");
  if (str("agentKey")) cfg.agentKey = str("agentKey");
  if (str("email")) cfg.email = str("email");
  if (str("expiresAt")) cfg.expiresAt = str("expiresAt");
  return cfg;
}

/** Creates `dir` with mode 0700 (and tightens it when it already exists and is ours). */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    fs.chmodSync(dir, 0o700);
  } catch {
    // Not ours (e.g. a shared directory): leave it; the files inside are still 0600.
  }
}

/** Writes `data` as JSON to `file` atomically (temporary file + rename) with mode 0600. */
export function writePrivateJson(file: string, data: unknown): void {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    fs.writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
    fs.chmodSync(tmp, 0o600); // the umask cannot widen it, but an existing file's mode could differ
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Saves the configuration: directory 0700, file 0600. Keys set to undefined are dropped. */
export function writeConfig(dir: string, cfg: CliConfig): void {
  ensurePrivateDir(dir);
  const clean = Object.fromEntries(Object.entries(cfg).filter(([, v]) => v !== undefined && v !== ""));
  writePrivateJson(configPath(dir), clean);
}

export interface Settings {
  url: string;
  token?: string;
  /** Where the token came from, for messages. */
  tokenSource?: "RECLO_TOKEN" | "config" | "RECLO_AGENT_KEY" | "agent key";
  config: CliConfig;
  /** How long one call is retried while the server (or a service it needs) is unavailable: `RECLO_RETRY_SECONDS` (default 120). */
  retryBudgetMs?: number;
}

/** Default of `RECLO_RETRY_SECONDS`. */
export const DEFAULT_RETRY_SECONDS = 120;

function retryBudgetMs(env: Env): number {
  const seconds = env.RECLO_RETRY_SECONDS === undefined || env.RECLO_RETRY_SECONDS === "" ? DEFAULT_RETRY_SECONDS : Number(env.RECLO_RETRY_SECONDS);
  if (!Number.isFinite(seconds) || seconds < 0) throw new Error(`RECLO_RETRY_SECONDS must be a number of seconds (0 or more), got ${JSON.stringify(env.RECLO_RETRY_SECONDS)}`);
  return seconds * 1000;
}

/**
 * Server URL: `--url` > `RECLO_URL` > config file > DEFAULT_URL. Token: `RECLO_TOKEN`, else
 * `RECLO_AGENT_KEY`, else the saved session token, else the saved agent key, the saved ones only
 * when they were saved for this same server URL.
 */
export function resolveSettings(dir: string, flagUrl: string | undefined, env: Env = process.env): Settings {
  const config = readConfig(dir);
  const url = normaliseUrl(flagUrl || env.RECLO_URL || config.url || DEFAULT_URL);
  const retry = { retryBudgetMs: retryBudgetMs(env) };
  if (env.RECLO_TOKEN) return { url, token: env.RECLO_TOKEN, tokenSource: "RECLO_TOKEN", config, ...retry };
  if (env.RECLO_AGENT_KEY) return { url, token: env.RECLO_AGENT_KEY, tokenSource: "RECLO_AGENT_KEY", config, ...retry };
  const sameServer = !config.url || normaliseUrl(config.url) === url;
  if (config.token && sameServer) return { url, token: config.token, tokenSource: "config", config, ...retry };
  // An agent's configuration (reclo agent install): its agent key, able to back up its one source only.
  if (config.agentKey && sameServer) return { url, token: config.agentKey, tokenSource: "agent key", config, ...retry };
  return { url, config, ...retry };
}

/** Checks the URL is http(s) and trims a trailing slash. */
export function normaliseUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`Invalid server URL ${JSON.stringify(raw)}: expected e.g. ${DEFAULT_URL}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`Invalid server URL ${JSON.stringify(raw)}: must be http(s)://…/graphql`);
  return u.toString().replace(/\/+$/, "");
}

// ---------------------------------------------------------------------------------------------
// Resume state

export function stateDir(dir: string): string {
  return path.join(dir, "state");
}

/** `<configDir>/state/<sha256(url + source + realpath)>.json` */
export function statePath(dir: string, url: string, sourceName: string, realImagePath: string): string {
  const key = createHash("sha256").update(`${url}\n${sourceName}\n${realImagePath}`).digest("hex");
  return path.join(stateDir(dir), `${key}.json`);
}

export function readState(file: string): ResumeState | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return null; // missing or unreadable: nothing to resume
  }
  const o = parsed as Partial<ResumeState> | null;
  if (!o || typeof o.backupId !== "string" || typeof o.imagePath !== "string" || typeof o.size !== "number" || typeof o.mtimeMs !== "number") return null;
  return { backupId: o.backupId, imagePath: o.imagePath, size: o.size, mtimeMs: o.mtimeMs };
}

export function writeState(file: string, state: ResumeState): void {
  ensurePrivateDir(path.dirname(path.dirname(file)));
  ensurePrivateDir(path.dirname(file));
  writePrivateJson(file, state);
}

export function removeState(file: string): void {
  fs.rmSync(file, { force: true });
}
