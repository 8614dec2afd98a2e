import { print } from "graphql";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { RecoveryProgressDocument, type RecoveryProgressSubscription } from "../src/client/generated/graphql";
import { LoadWindow, epochMs, memoryAfterGc, serve, sleep } from "./ipc";

/**
 * A bench child process holding subscribers: one graphql-ws client (one WebSocket, like one browser
 * tab) per `recoveryProgress` subscription, with connectionParams.authorization. Every event whose
 * message is "bench r=<round> t=<epoch ms>" is timed on arrival (latency = now − t).
 */

export interface SubSpec {
  token: string;
  recoveryId: string;
}

export interface OpenResult {
  opened: number;
  failed: number;
  errors: string[];
  /** Subscribe call → initial snapshot received, per subscriber that opened. */
  firstSnapshotMs: Float64Array;
}

export interface ClientStats {
  subscribers: number;
  /** Bench events received since the last reset. */
  received: number;
  /** Events missing at a subscriber that did get the phase's last event (coalesced by the publisher's throttle). */
  coalesced: number;
  /** Events missing at a subscriber that never got the phase's last event. */
  lost: number;
  extra: number;
  outOfOrder: number;
  nonBenchEvents: number;
  errors: number;
  errorSample: string[];
  completedEarly: number;
  unexpectedCloses: number;
  closeSample: string[];
  latenciesMs?: Float64Array;
}

interface Sub {
  client: Client;
  unsubscribe: () => void;
  lastRound: number;
  received: number;
  disposing: boolean;
}

const query = print(RecoveryProgressDocument);
const BENCH_MESSAGE = /^bench r=(\d+) t=(\d+(?:\.\d+)?)$/;

let subs: Sub[] = [];
let latencies = new Float64Array(1 << 16);
let count = 0;
const counters = { nonBenchEvents: 0, outOfOrder: 0, errors: 0, completedEarly: 0, unexpectedCloses: 0 };
const errorSample: string[] = [];
const closeSample: string[] = [];
const load = new LoadWindow();

function record(ms: number): void {
  if (count === latencies.length) {
    const bigger = new Float64Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
  }
  latencies[count++] = ms;
}

function note(sample: string[], text: string): void {
  if (sample.length < 5) sample.push(text);
}

function openOne(url: string, spec: SubSpec, timeoutMs: number): Promise<{ sub: Sub; firstMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = epochMs();
    let first = true;
    const timer = setTimeout(() => fail(new Error(`no initial snapshot within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      if (!first) return;
      first = false;
      sub.disposing = true;
      sub.unsubscribe();
      void sub.client.dispose();
      reject(err);
    };
    const client = createClient({
      url,
      webSocketImpl: WebSocket,
      lazy: true,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${spec.token}` },
      on: {
        closed: (event) => {
          if (sub.disposing) return;
          const e = event as { code?: number; reason?: string };
          counters.unexpectedCloses++;
          note(closeSample, `${e.code ?? "?"} ${e.reason ?? ""}`.trim());
          fail(new Error(`socket closed before the initial snapshot (${e.code ?? "?"} ${e.reason ?? ""})`));
        },
      },
    });
    const sub: Sub = { client, unsubscribe: () => {}, lastRound: 0, received: 0, disposing: false };
    sub.unsubscribe = client.subscribe<RecoveryProgressSubscription>(
      { query, variables: { recoveryId: spec.recoveryId } },
      {
        next: (result) => {
          const t = epochMs();
          if (result.errors?.length) {
            counters.errors++;
            note(errorSample, result.errors.map((e) => e.message).join("; "));
            return fail(new Error(result.errors[0]!.message));
          }
          if (first) {
            first = false;
            clearTimeout(timer);
            resolve({ sub, firstMs: t - t0 });
            return;
          }
          const m = BENCH_MESSAGE.exec(result.data?.recoveryProgress.message ?? "");
          if (!m) {
            counters.nonBenchEvents++;
            return;
          }
          const round = Number(m[1]);
          if (round <= sub.lastRound) counters.outOfOrder++;
          sub.lastRound = round;
          sub.received++;
          record(t - Number(m[2]));
        },
        error: (err) => {
          counters.errors++;
          const text = err instanceof Error ? err.message : Array.isArray(err) ? err.map((e: { message?: string }) => e.message).join("; ") : JSON.stringify(err);
          note(errorSample, text);
          fail(new Error(text));
        },
        complete: () => {
          if (!sub.disposing) counters.completedEarly++;
        },
      },
    );
  });
}

// graphql-ws rejects an internal promise with the CloseEvent when a socket it is connecting is
// closed by the server (e.g. the API refusing a connection while its database is overloaded):
// count it as an unexpected close instead of letting it end this process.
process.on("unhandledRejection", (reason) => {
  const e = reason as { code?: number; reason?: string; type?: string };
  if (e?.type !== "close" && e?.code === undefined) throw reason;
  counters.unexpectedCloses++;
  note(closeSample, `${e.code ?? "?"} ${e.reason ?? ""}`.trim());
});

serve(
  {
    async open(args: { url: string; subs: SubSpec[]; timeoutMs: number }): Promise<OpenResult> {
      const settled = await Promise.allSettled(args.subs.map((spec) => openOne(args.url, spec, args.timeoutMs)));
      const first: number[] = [];
      const errors: string[] = [];
      for (const s of settled) {
        if (s.status === "fulfilled") {
          subs.push(s.value.sub);
          first.push(s.value.firstMs);
        } else if (errors.length < 5) errors.push(s.reason instanceof Error ? s.reason.message : String(s.reason));
      }
      return { opened: first.length, failed: settled.length - first.length, errors, firstSnapshotMs: Float64Array.from(first) };
    },

    /** Bench events received since the last reset (for the orchestrator's drain loop). */
    received(): number {
      return count;
    },

    reset() {
      count = 0;
      for (const s of subs) s.received = 0;
      for (const k of Object.keys(counters) as (keyof typeof counters)[]) counters[k] = 0;
      errorSample.length = 0;
      closeSample.length = 0;
    },

    stats(args: { expectedPerSub: number; finalRound?: number; withLatencies: boolean }): ClientStats {
      let lost = 0;
      let coalesced = 0;
      let extra = 0;
      for (const s of subs) {
        const missing = Math.max(0, args.expectedPerSub - s.received);
        // A skipped intermediate round is fine when the latest one arrived (RecoveryProgress coalesces).
        if (args.finalRound !== undefined && s.lastRound >= args.finalRound) coalesced += missing;
        else lost += missing;
        extra += Math.max(0, s.received - args.expectedPerSub);
      }
      return {
        subscribers: subs.length,
        received: count,
        coalesced,
        lost,
        extra,
        ...counters,
        errorSample: [...errorSample],
        closeSample: [...closeSample],
        latenciesMs: args.withLatencies ? latencies.slice(0, count) : undefined,
      };
    },

    async close(): Promise<{ closed: number }> {
      const closing = subs;
      subs = [];
      const done = closing.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.disposing = true;
            s.unsubscribe();
            void Promise.resolve(s.client.dispose()).then(() => resolve(), () => resolve());
          }),
      );
      await Promise.race([Promise.all(done), sleep(15_000)]);
      return { closed: closing.length };
    },

    windowStart() {
      load.start();
    },

    windowEnd() {
      return load.end();
    },

    async mem() {
      return { memory: await memoryAfterGc(), subscribers: subs.length };
    },

    stop() {
      setImmediate(() => process.exit(0));
    },
  },
  () => ({ pid: process.pid }),
);
