import fs from "node:fs";
import path from "node:path";
import { print } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import mysql from "mysql2/promise";
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import type { PrivateStack } from "./stack/private-stack";

/** One GraphQL answer as a client sees it: data or the typed error, and how long it took. */
export interface Answer<T = unknown> {
  ok: boolean;
  data?: T;
  code?: string;
  dependency?: string;
  retryAfter?: unknown;
  message?: string;
  ms: number;
}

/**
 * A GraphQL request with a client-side timeout (a hung request is an answer too: TIMEOUT), never
 * throwing: the fault cases record what every request got.
 */
export async function ask<T, V>(url: string, token: string | undefined, doc: TypedDocumentNode<T, V>, variables: V, timeoutMs = 5000): Promise<Answer<T>> {
  const t0 = performance.now();
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/graphql-response+json, application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query: print(doc), variables }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    const ms = performance.now() - t0;
    let body: { data?: T; errors?: { message: string; extensions?: Record<string, unknown> }[] };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      return { ok: false, code: `HTTP_${res.status}`, message: text.slice(0, 200), ms };
    }
    const err = body.errors?.[0];
    if (err || !body.data) {
      return { ok: false, code: (err?.extensions?.code as string | undefined) ?? `HTTP_${res.status}`, dependency: err?.extensions?.dependency as string | undefined, retryAfter: err?.extensions?.retryAfter, message: err?.message, ms };
    }
    return { ok: true, data: body.data, ms };
  } catch (err) {
    const ms = performance.now() - t0;
    const name = (err as Error).name;
    return { ok: false, code: name === "TimeoutError" ? "TIMEOUT" : "NETWORK", message: (err as Error).message, ms };
  }
}

/** Polls `cond` every `everyMs` until it returns a value (not undefined), or fails after `timeoutMs`. */
export async function until<T>(what: string, cond: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Direct reads of the private database (the suite's view of the truth, independent of the API). */
export class Truth {
  private constructor(private readonly conn: mysql.Pool) {}
  static create(url: string): Truth {
    return new Truth(mysql.createPool({ uri: url, connectionLimit: 2, connectTimeout: 1000 }));
  }
  async recovery(id: string): Promise<{ state: string; resources: unknown } | undefined> {
    const [rows] = await this.conn.query("SELECT state, resources FROM recoveries WHERE id = ?", [id]);
    return (rows as { state: string; resources: unknown }[])[0];
  }
  async recoveriesOf(backupId: string): Promise<{ id: string; state: string }[]> {
    const [rows] = await this.conn.query("SELECT id, state FROM recoveries WHERE backup_id = ?", [backupId]);
    return rows as { id: string; state: string }[];
  }
  async activeRecoveries(): Promise<{ id: string; state: string }[]> {
    const [rows] = await this.conn.query("SELECT id, state FROM recoveries WHERE state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')");
    return rows as { id: string; state: string }[];
  }
  async runningInstances(): Promise<{ id: string }[]> {
    const [rows] = await this.conn.query("SELECT id FROM instances WHERE state NOT IN ('TERMINATED', 'LOST')");
    return rows as { id: string }[];
  }
  async instances(recoveryId: string): Promise<{ id: string; state: string; provider_id: string }[]> {
    const [rows] = await this.conn.query("SELECT * FROM instances WHERE recovery_id = ?", [recoveryId]);
    return rows as { id: string; state: string; provider_id: string }[];
  }
  async events(recoveryId: string): Promise<{ step: string; status: string; created_at: Date }[]> {
    const [rows] = await this.conn.query("SELECT step, status, created_at FROM recovery_events WHERE recovery_id = ? ORDER BY created_at, id", [recoveryId]);
    return rows as { step: string; status: string; created_at: Date }[];
  }
  async close(): Promise<void> {
    await this.conn.end();
  }
}

/** Every S3 object and multipart upload whose key mentions the recovery, in every bucket of the stack. */
export async function s3Leftovers(stack: PrivateStack, userId: string, recoveryId: string): Promise<string[]> {
  const s3 = new S3Client({ endpoint: stack.s3.endpoint, region: stack.s3.region, forcePathStyle: true, credentials: { accessKeyId: stack.s3.accessKeyId, secretAccessKey: stack.s3.secretAccessKey } });
  const out: string[] = [];
  try {
    for (const bucket of stack.s3.buckets) {
      let token: string | undefined;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${userId}/`, ContinuationToken: token }));
        for (const o of page.Contents ?? []) if (o.Key?.includes(recoveryId)) out.push(`s3://${bucket}/${o.Key}`);
        token = page.NextContinuationToken;
      } while (token);
      const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      for (const u of uploads.Uploads ?? []) if (u.Key?.includes(recoveryId)) out.push(`multipart s3://${bucket}/${u.Key} (${u.UploadId})`);
    }
  } finally {
    s3.destroy();
  }
  return out.sort();
}

/** Every file (not directory) under `dir`, relative to it. */
export function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/** Live (non-zombie) processes whose command line mentions `dir` (any program: QEMU, qemu-img, a stray helper). */
export function processesMentioning(dir: string, except: number[] = []): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const p of fs.readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    const pid = Number(p);
    if (except.includes(pid) || pid === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " ").trim();
      const stat = fs.readFileSync(`/proc/${p}/stat`, "utf8");
      if (cmd.includes(dir) && !/\) Z /.test(stat)) out.push({ pid, cmd });
    } catch {
      // gone
    }
  }
  return out;
}

export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** Step durations (ms) from the recovery's timeline: first STARTED of a step to its SUCCEEDED. */
export function stepDurations(events: { step: string; status: string; created_at: Date }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const step of ["PREPARING", "IMPORTING", "LAUNCHING", "CHECKING"]) {
    const start = events.find((e) => e.step === step && e.status === "STARTED");
    const end = [...events].reverse().find((e) => e.step === step && e.status === "SUCCEEDED");
    if (start && end) out[step] = end.created_at.getTime() - start.created_at.getTime();
  }
  return out;
}

export interface ReportRow {
  fault: string;
  answer: string;
  recoverMs?: number;
  extra?: string;
  left: string;
  outcome: string;
}

export function renderReport(rows: ReportRow[], notes: string[]): string {
  const lines = [
    "# Fault suite report",
    "",
    `Run at ${new Date().toISOString()} on ${process.env.CI ? "CI" : "a local machine"}. Timings are measurements (goals: service back < 2 s after the dependency, a killed import costs < 10 % of the step's undisturbed time); only correctness is asserted.`,
    "",
    "| fault | answer during the outage | time to recover service | extra time vs baseline | left behind | outcome |",
    "|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.fault} | ${r.answer} | ${r.recoverMs === undefined ? "–" : `${Math.round(r.recoverMs)} ms`} | ${r.extra ?? "–"} | ${r.left} | ${r.outcome} |`),
    "",
    ...notes.map((n) => `- ${n}`),
    "",
  ];
  return lines.join("\n");
}
