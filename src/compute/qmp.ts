import { EventEmitter } from "node:events";
import net from "node:net";

/**
 * A minimal QEMU Machine Protocol client over a unix socket: reads the greeting, negotiates
 * capabilities, then runs commands one JSON line at a time, matching replies by "id". Events
 * ({"event": ...}) are emitted as "event". QEMU's QMP chardev serves one client at a time, so
 * keep connections short (connect, execute, close).
 */

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  constructor(
    message: string,
    /** QMP error class (GenericError, CommandNotFound, ...) or a local one: Timeout, Closed, Connect. */
    readonly errorClass: string,
  ) {
    super(message);
    this.name = "QmpError";
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface QmpConnectOptions {
  /** Connect + greeting + qmp_capabilities. Default 5 s. */
  timeoutMs?: number;
}

export class QmpClient extends EventEmitter {
  /** The greeting's version and capabilities. */
  greeting: Record<string, unknown> = {};
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closedError: QmpError | undefined;

  private constructor(private readonly socket: net.Socket) {
    super();
  }

  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const socket = net.createConnection({ path: socketPath });
    const client = new QmpClient(socket);
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          const onError = (err: Error) => reject(new QmpError(`QMP connect ${socketPath}: ${err.message}`, "Connect"));
          socket.once("error", onError);
          socket.setEncoding("utf8");
          let greeted = false;
          socket.on("data", (chunk: string) => {
            client.buffer += chunk;
            if (!greeted) {
              const nl = client.buffer.indexOf("\n");
              if (nl < 0) return;
              const line = client.buffer.slice(0, nl);
              client.buffer = client.buffer.slice(nl + 1);
              let msg: unknown;
              try {
                msg = JSON.parse(line);
              } catch {
                reject(new QmpError(`QMP greeting is not JSON: ${line.slice(0, 200)}`, "Protocol"));
                return;
              }
              const qmp = (msg as { QMP?: Record<string, unknown> }).QMP;
              if (!qmp) {
                reject(new QmpError(`unexpected QMP greeting: ${line.slice(0, 200)}`, "Protocol"));
                return;
              }
              greeted = true;
              client.greeting = qmp;
              socket.off("error", onError);
              socket.on("error", (err) => client.fail(new QmpError(`QMP socket error: ${err.message}`, "Closed")));
              resolve();
            }
            client.drain();
          });
          socket.on("close", () => {
            if (!greeted) reject(new QmpError(`QMP connection to ${socketPath} closed before the greeting`, "Closed"));
            client.fail(new QmpError("QMP connection closed", "Closed"));
          });
        }),
        timeoutMs,
        () => new QmpError(`QMP connect to ${socketPath} timed out after ${timeoutMs} ms`, "Timeout"),
      );
      await client.execute("qmp_capabilities", undefined, { timeoutMs });
      return client;
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /** Runs a command; resolves with its "return" value, rejects with QmpError on an "error" reply, timeout or close. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = `reclo-${this.nextId++}`;
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError(`QMP ${command} timed out after ${timeoutMs} ms`, "Timeout"));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const line = JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + "\n";
      this.socket.write(line, (err) => {
        if (err) this.settle(id, new QmpError(`QMP write ${command}: ${err.message}`, "Closed"));
      });
    });
  }

  close(): void {
    this.fail(new QmpError("QMP connection closed", "Closed"));
    this.socket.destroy();
  }

  private drain(): void {
    for (let nl = this.buffer.indexOf("\n"); nl >= 0; nl = this.buffer.indexOf("\n")) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (typeof msg.event === "string") {
        this.emit("event", msg as unknown as QmpEvent);
        continue;
      }
      const id = typeof msg.id === "string" ? msg.id : undefined;
      if (!id) continue;
      if ("error" in msg) {
        const e = (msg.error ?? {}) as { class?: string; desc?: string };
        const p = this.pending.get(id);
        this.settle(id, new QmpError(`QMP ${p?.command ?? "command"}: ${e.desc ?? "error"}`, e.class ?? "GenericError"));
      } else {
        this.settle(id, undefined, msg.return);
      }
    }
  }

  private settle(id: string, err: Error | undefined, value?: unknown): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(value);
  }

  private fail(err: QmpError): void {
    if (!this.closedError) this.closedError = err;
    for (const id of [...this.pending.keys()]) this.settle(id, err);
  }
}

/** Connects, runs one command, closes. */
export async function qmpExecute<T = unknown>(socketPath: string, command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
  const client = await QmpClient.connect(socketPath, opts);
  try {
    return await client.execute<T>(command, args, opts);
  } finally {
    client.close();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, makeError: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(makeError()), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
