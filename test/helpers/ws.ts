import type { Client } from "graphql-ws";
import type { ExecutionResult } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print } from "graphql";
import type { ReCloClient } from "../../src/client/graphql-client";

export interface Subscription<T> {
  /** Every result received so far. */
  results: ExecutionResult<T>[];
  /** Resolves when the server completes the subscription or the socket closes; with the close event if any. */
  ended: Promise<{ code?: number; reason?: string; error?: unknown }>;
  /** Resolves once at least n results arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<ExecutionResult<T>[]>;
  /** Resolves once the server acknowledged the connection. */
  connected: Promise<void>;
  client: Client;
  dispose(): Promise<void>;
}

/** Subscribes over a real WebSocket and records what arrives and how it ends. */
export function openSubscription<T, V>(api: ReCloClient, document: TypedDocumentNode<T, V>, variables?: V): Subscription<T> {
  const results: ExecutionResult<T>[] = [];
  let closeEvent: { code?: number; reason?: string } | undefined;
  let onConnected!: () => void;
  const connected = new Promise<void>((r) => (onConnected = r));
  const client = api.ws({
    lazy: true,
    retryAttempts: 0,
    on: {
      closed: (e) => {
        const ev = e as { code: number; reason: string };
        closeEvent = { code: ev.code, reason: ev.reason };
      },
    },
  });
  client.on("connected", () => onConnected());
  const waiters: { n: number; resolve: () => void }[] = [];
  const ended = new Promise<{ code?: number; reason?: string; error?: unknown }>((resolve) => {
    client.subscribe<T>(
      { query: print(document), variables: (variables ?? {}) as Record<string, unknown> },
      {
        next: (value) => {
          results.push(value as ExecutionResult<T>);
          for (const w of waiters.filter((w) => results.length >= w.n)) w.resolve();
        },
        error: (error) => {
          const ev = error as { code?: number; reason?: string };
          resolve({ code: ev?.code ?? closeEvent?.code, reason: ev?.reason ?? closeEvent?.reason, error });
        },
        complete: () => resolve({ ...closeEvent }),
      },
    );
  });
  return {
    results,
    ended,
    connected,
    client,
    waitFor(n, timeoutMs = 10_000) {
      if (results.length >= n) return Promise.resolve(results);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} results (have ${results.length})`)), timeoutMs);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve(results);
          },
        });
      });
    },
    dispose: async () => {
      await client.dispose();
    },
  };
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}
