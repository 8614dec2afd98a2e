import { connectionFailure, unavailable, type Dependency } from "./errors";

/**
 * Which dependencies are up, known from readiness checks run in the background (one in flight per
 * check, every `intervalMs`) and from real calls that failed to connect. It is the circuit breaker
 * of each dependency: while one is known down, calls that need it fail at once with UNAVAILABLE
 * (`assertUp`) instead of waiting on a connect timeout; the next passing check (within about one
 * interval of the dependency's return) closes it. A check that only answers slowly opens it after
 * SLOW_CHECKS_TO_OPEN slow answers in a row. `/readyz` answers from `snapshot()`.
 */
export interface CheckState {
  ok: boolean;
  /** How long the last check took. */
  ms: number;
  error?: string;
  checkedAt: number;
}

export interface AvailabilityCheck {
  /** The dependency this check is about (a check without one is only reported by /readyz). */
  dependency?: Dependency;
  run(): Promise<void>;
}

export interface AvailabilityOptions {
  /** How often each check runs (default 1000 ms). */
  intervalMs?: number;
  /** A check slower than this fails (default 2000 ms). */
  timeoutMs?: number;
  /** Called when a check changes state (for the log). */
  onChange?(name: string, state: CheckState): void;
}

/** connectionFailure codes that mean "no answer in time" rather than "not reachable". */
const TIMEOUTS = new Set(["ETIMEDOUT", "GRPC_DEADLINE_EXCEEDED", "TimeoutError", "RequestTimeout", "ConnectionTimeoutError"]);

/** A check that did not answer in time (as opposed to one that failed, e.g. refused). */
class CheckTimeout extends Error {}

/**
 * A slow answer is not yet an outage: a busy machine can hold a check past its timeout. A check
 * that failed (refused, reset…) marks its dependency down at once; one that timed out only after
 * this many slow answers in a row.
 */
export const SLOW_CHECKS_TO_OPEN = 3;

export class Availability {
  private readonly checks = new Map<string, AvailabilityCheck>();
  private readonly slowInARow = new Map<string, number>();
  private readonly states = new Map<string, CheckState>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  readonly intervalMs: number;
  readonly timeoutMs: number;

  constructor(private readonly opts: AvailabilityOptions = {}) {
    this.intervalMs = opts.intervalMs ?? 1000;
    this.timeoutMs = opts.timeoutMs ?? 2000;
  }

  /** Seconds a client should wait before trying again (`extensions.retryAfter`). */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((2 * this.intervalMs) / 1000));
  }

  /** Adds (or replaces) a check; it is run at once. */
  add(name: string, check: AvailabilityCheck): Promise<void> {
    this.checks.set(name, check);
    this.states.delete(name);
    return this.runCheck(name);
  }

  /** Runs every check now, then every interval until `stop()`. */
  async start(): Promise<void> {
    this.stop();
    this.timer = setInterval(() => void this.checkAll(), this.intervalMs);
    this.timer.unref();
    await this.checkAll();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Runs every check (one in flight per check) and resolves when they have answered. */
  checkAll(): Promise<void> {
    return Promise.all([...this.checks.keys()].map((name) => this.runCheck(name))).then(() => undefined);
  }

  /** False while the last check of a check about `dependency` failed. */
  isUp(dependency: Dependency): boolean {
    for (const [name, check] of this.checks) if (check.dependency === dependency && this.states.get(name)?.ok === false) return false;
    return true;
  }

  /** Throws UNAVAILABLE (at once) while `dependency` is known down. */
  assertUp(dependency: Dependency): void {
    if (!this.isUp(dependency)) throw unavailable(dependency, this.retryAfterSeconds);
  }

  /**
   * A real call to `dependency` failed: when it failed to connect, the dependency is marked down
   * (its check runs again at once, closing the breaker if it passes) and the answer is UNAVAILABLE;
   * any other error is returned as it is.
   */
  failed(dependency: Dependency, err: unknown): unknown {
    const code = connectionFailure(err);
    if (!code) return err;
    // A refused or dropped connection is an outage; a call that timed out may only have met a busy
    // dependency: its check runs again at once and decides (slow answers count as above).
    const timedOut = TIMEOUTS.has(code);
    for (const [name, check] of this.checks) {
      if (check.dependency !== dependency) continue;
      if (!timedOut) this.setState(name, { ok: false, ms: 0, error: `${code}: ${messageOf(err)}`, checkedAt: Date.now() });
      void this.runCheck(name);
    }
    return unavailable(dependency, this.retryAfterSeconds, err);
  }

  /** Runs `fn` unless `dependency` is known down; its connection failures become UNAVAILABLE. */
  async guard<T>(dependency: Dependency, fn: () => Promise<T>): Promise<T> {
    this.assertUp(dependency);
    try {
      return await fn();
    } catch (err) {
      throw this.failed(dependency, err);
    }
  }

  /** The last result of every check (a check that never ran yet counts as passing). */
  snapshot(): Record<string, CheckState> {
    const out: Record<string, CheckState> = {};
    for (const name of this.checks.keys()) out[name] = this.states.get(name) ?? { ok: true, ms: 0, checkedAt: 0 };
    return out;
  }

  private runCheck(name: string): Promise<void> {
    const running = this.inFlight.get(name);
    if (running) return running;
    const check = this.checks.get(name);
    if (!check) return Promise.resolve();
    const t0 = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CheckTimeout(`${name} did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    const p = Promise.race([check.run(), timeout])
      .then(
        () => {
          this.slowInARow.delete(name);
          this.setState(name, { ok: true, ms: Date.now() - t0, checkedAt: Date.now() });
        },
        (err: unknown) => {
          const slow = err instanceof CheckTimeout ? (this.slowInARow.get(name) ?? 0) + 1 : 0;
          this.slowInARow.set(name, slow);
          // Known down stays down; a first few slow answers leave a passing check passing.
          if (slow > 0 && slow < SLOW_CHECKS_TO_OPEN && this.states.get(name)?.ok !== false) return;
          this.setState(name, { ok: false, ms: Date.now() - t0, error: messageOf(err), checkedAt: Date.now() });
        },
      )
      .finally(() => {
        clearTimeout(timer);
        this.inFlight.delete(name);
      });
    this.inFlight.set(name, p);
    return p;
  }

  private setState(name: string, state: CheckState): void {
    if (!this.checks.has(name)) return;
    const before = this.states.get(name);
    this.states.set(name, state);
    if (!before || before.ok !== state.ok) this.opts.onChange?.(name, state);
  }
}

function messageOf(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length) return messageOf(err.errors[0]);
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
