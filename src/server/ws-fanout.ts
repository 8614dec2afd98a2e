import { createSourceEventStream, execute, getOperationAST, Kind, subscribe, type DocumentNode, type ExecutionArgs, type ExecutionResult } from "graphql";

type Result = ExecutionResult;
type Stream = AsyncIterableIterator<Result>;

export interface SubscriptionFanoutOptions {
  /**
   * Root subscription fields whose stream is a *state* stream ("current state at once, then every
   * change"): a subscriber that joins a running execution gets its latest result first. Only these
   * are shared; any other subscription runs once per subscriber (graphql's own `subscribe`).
   */
  stateFields: ReadonlySet<string>;
  /** Who the operation runs as (part of the key: field resolvers may read the user from the context). */
  userOf(contextValue: unknown): string | undefined;
  /**
   * A result as the payload of a `next` message (errors formatted), JSON in UTF-8. Called once per
   * result of a shared execution, for all the subscribers that joined with a sink.
   */
  serialize?(result: Result): Buffer;
  /**
   * Runs the operation for one event of a shared execution (`rootValue`: the event), as graphql-js's
   * subscribe does per subscriber (mapSourceToResponse). Default: graphql-js's `execute`.
   */
  execute?(args: ExecutionArgs): Result | Promise<Result>;
}

/**
 * Where a subscriber's results go when it joined with one: the payload serialized once for all
 * subscribers of the execution, sent on its socket at once (in the order of the results), instead of
 * a result per `next()` that the transport serializes and sends itself. The subscriber's stream then
 * only ends (done, or the execution's error).
 */
export interface FanoutSink {
  send(payloadJson: Buffer): void;
}

/**
 * Executes each distinct subscription once per event and fans the result out to every subscriber
 * of it, instead of executing it per subscriber. Subscribers share an execution when they send the
 * same document (the same parsed object: the WebSocket document cache hands out one per query),
 * operation name and variables as the same user; the first one's subscribe (the field's
 * `subscribe`, which checks ownership) creates the stream, every later one joins it with the
 * latest result first, then every result in order. The stream is returned (its listeners and
 * timers released) when its last subscriber leaves, and forgotten when it ends, so the next
 * subscriber starts a fresh one from the current state.
 */
export class SubscriptionFanout {
  private readonly channels = new Map<string, Channel>();
  private readonly documentIds = new WeakMap<DocumentNode, number>();
  private nextDocumentId = 0;

  constructor(private readonly opts: SubscriptionFanoutOptions) {}

  /** Running shared executions (tests: nothing left behind). */
  get size(): number {
    return this.channels.size;
  }

  /** Subscribers over all shared executions. */
  get subscribers(): number {
    let n = 0;
    for (const c of this.channels.values()) n += c.members.size;
    return n;
  }

  /**
   * graphql's `subscribe`, sharing the execution of state subscriptions. With a `sink` (and a
   * `serialize` option), a shared subscriber's results are sent through it, serialized once.
   */
  subscribe(args: ExecutionArgs, sink?: FanoutSink): Promise<Stream | Result> {
    const key = this.keyOf(args);
    if (key === undefined) return Promise.resolve(subscribe(args) as Promise<Stream | Result> | Stream | Result);
    let channel = this.channels.get(key);
    if (!channel) {
      const created: Channel = new Channel(args, this.opts.execute ?? execute, this.opts.serialize, () => {
        if (this.channels.get(key) === created) this.channels.delete(key);
      });
      this.channels.set(key, created);
      channel = created;
    }
    return channel.join(this.opts.serialize ? sink : undefined);
  }

  private keyOf(args: ExecutionArgs): string | undefined {
    const operation = getOperationAST(args.document, args.operationName);
    if (operation?.operation !== "subscription") return undefined;
    const [root] = operation.selectionSet.selections;
    if (operation.selectionSet.selections.length !== 1 || root?.kind !== Kind.FIELD || !this.opts.stateFields.has(root.name.value)) return undefined;
    const user = this.opts.userOf(args.contextValue);
    if (user === undefined) return undefined;
    let doc = this.documentIds.get(args.document);
    if (doc === undefined) this.documentIds.set(args.document, (doc = ++this.nextDocumentId));
    return `${doc}\u0000${args.operationName ?? ""}\u0000${JSON.stringify(args.variableValues ?? {})}\u0000${user}`;
  }
}

/** One shared execution: its source stream, its subscribers, and the latest result. */
class Channel {
  readonly members = new Set<Member>();
  private latest: Result | undefined;
  private latestJson: Buffer | undefined;
  private source: AsyncIterator<unknown> | undefined;
  private closed = false;
  private readonly started: Promise<AsyncIterator<unknown> | Result>;

  constructor(
    private readonly args: ExecutionArgs,
    private readonly execute: (args: ExecutionArgs) => Result | Promise<Result>,
    private readonly serialize: ((result: Result) => Buffer) | undefined,
    private readonly gone: () => void,
  ) {
    this.started = this.start();
  }

  async join(sink?: FanoutSink): Promise<Stream | Result> {
    const member = new Member(this, sink);
    this.members.add(member);
    if (this.latest) member.push(this.latest, this.latestJson);
    const started = await this.started;
    if (!isAsyncIterator(started)) {
      this.members.delete(member);
      return started;
    }
    return member;
  }

  leave(member: Member): void {
    if (!this.members.delete(member) || this.members.size || this.closed) return;
    // Once a subscriber has joined, the stream runs only while someone listens.
    this.close();
    void this.source?.return?.();
  }

  private close(): void {
    this.closed = true;
    this.gone();
  }

  private async start(): Promise<AsyncIterator<unknown> | Result> {
    let source: Awaited<ReturnType<typeof createSourceEventStream>>;
    try {
      source = await createSourceEventStream(this.args);
    } catch (err) {
      this.close();
      throw err;
    }
    if (!isAsyncIterable(source)) {
      // Refused (not found, not yours, invalid arguments): not kept, the next subscriber asks again.
      this.close();
      return source;
    }
    const iterator = source[Symbol.asyncIterator]();
    this.source = iterator;
    if (!this.members.size) {
      // Everyone left while it was being created.
      this.close();
      void iterator.return?.();
    } else void this.pump(iterator);
    return iterator;
  }

  private async pump(source: AsyncIterator<unknown>): Promise<void> {
    let failure: unknown;
    try {
      for (;;) {
        const r = await source.next();
        if (r.done || this.closed) break;
        // What graphql's own subscribe does per subscriber (mapSourceToResponse), once for all.
        const result = await this.execute({ ...this.args, rootValue: r.value });
        if (this.closed) break;
        this.latest = result;
        // Serialized once here, not once per subscriber by the transport.
        const json = (this.latestJson = this.serialize?.(result));
        for (const m of this.members) m.push(result, json);
      }
    } catch (err) {
      failure = err;
    }
    if (!this.closed) this.close();
    for (const m of [...this.members]) m.end(failure);
    this.members.clear();
  }
}

/**
 * One subscriber's view of a shared execution: the results it has not taken yet, or, with a sink,
 * nothing (each result is sent through the sink as it comes; `next()` only reports the end).
 */
class Member implements Stream {
  private queue: Result[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  private failure: unknown;

  constructor(
    private readonly channel: Channel,
    private readonly sink: FanoutSink | undefined,
  ) {}

  push(result: Result, json: Buffer | undefined): void {
    if (this.ended) return;
    if (this.sink && json !== undefined) {
      this.sink.send(json);
      return;
    }
    this.queue.push(result);
    this.wake?.();
  }

  end(failure?: unknown): void {
    this.ended = true;
    this.failure = failure;
    this.wake?.();
  }

  async next(): Promise<IteratorResult<Result>> {
    for (;;) {
      if (this.queue.length) return { done: false, value: this.queue.shift()! };
      if (this.ended) {
        this.channel.leave(this);
        if (this.failure !== undefined) {
          const failure = this.failure;
          this.failure = undefined;
          throw failure;
        }
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  async return(): Promise<IteratorResult<Result>> {
    this.queue = [];
    this.ended = true;
    this.failure = undefined;
    this.channel.leave(this);
    this.wake?.();
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): Stream {
    return this;
  }
}

function isAsyncIterator(v: unknown): v is AsyncIterator<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { next?: unknown }).next === "function";
}

function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === "function";
}
