import { print, type ExecutionResult, type GraphQLFormattedError } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { createClient, type Client as WsClient, type ClientOptions as ClientOptionsWs } from "graphql-ws";

/** A GraphQL response with errors, with the first error's code at hand. */
export class GraphQLRequestError extends Error {
  constructor(
    readonly errors: readonly GraphQLFormattedError[],
    readonly status: number,
    /** Set when the client retried it (UNAVAILABLE) for this long before giving up. */
    readonly retriedForMs?: number,
  ) {
    super(errors.map((e) => e.message).join("; "));
    this.name = "GraphQLRequestError";
  }

  get code(): string | undefined {
    return this.errors[0]?.extensions?.code as string | undefined;
  }

  get extensions(): Readonly<Record<string, unknown>> | undefined {
    return this.errors[0]?.extensions;
  }
}

/**
 * Retries of calls that did not reach a working server: an UNAVAILABLE answer (a dependency of the
 * server is down: nothing was done, the same call may be made again) and network errors. Waits
 * the answer's `retryAfter` (at least), growing with each attempt, until `budgetMs` has passed.
 */
export interface RetryPolicy {
  /** Total time spent retrying one call before its last failure is returned (0: no retries). */
  budgetMs: number;
  /** First wait when the answer names none (default 500 ms); doubles per attempt. */
  baseMs?: number;
  /** Longest single wait (default 5 s). */
  maxDelayMs?: number;
  /** Told before each wait (what failed, how long until the next attempt). */
  onRetry?(info: { attempt: number; delayMs: number; reason: string }): void;
}

export interface ClientOptions {
  /** http(s)://host:port/graphql */
  url: string;
  token?: string;
  headers?: Record<string, string>;
  retry?: RetryPolicy;
}

/** A failure of fetch itself (no HTTP answer): refused, reset, DNS… */
export function isNetworkError(err: unknown): boolean {
  const e = err as { name?: string; message?: string } | null;
  return e?.name === "TypeError" && /fetch failed/i.test(e.message ?? "");
}

/** The typed client the CLI and the tests use: only GraphQL, only generated documents. */
export class ReCloClient {
  constructor(private readonly opts: ClientOptions) {}

  withToken(token: string | undefined): ReCloClient {
    return new ReCloClient({ ...this.opts, token });
  }

  /**
   * The raw result (data and errors), for callers that inspect partial results. With a retry
   * policy, UNAVAILABLE answers and network errors are retried within its budget; a network error
   * that outlasts it is thrown with `retriedForMs` set.
   */
  async execute<TResult, TVars>(document: TypedDocumentNode<TResult, TVars>, variables?: TVars): Promise<{ status: number; body: ExecutionResult<TResult>; retriedForMs?: number }> {
    const policy = this.opts.retry;
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      let result: { status: number; body: ExecutionResult<TResult> } | undefined;
      let failure: unknown;
      try {
        result = await this.executeOnce(document, variables);
      } catch (err) {
        if (!isNetworkError(err)) throw err;
        failure = err;
      }
      const unavailable = result?.body.errors?.[0]?.extensions?.code === "UNAVAILABLE" ? result.body.errors[0] : undefined;
      if (result && !unavailable) return attempt > 1 ? { ...result, retriedForMs: Date.now() - started } : result;
      const retryAfterMs = Number(unavailable?.extensions?.retryAfter) * 1000;
      const base = policy?.baseMs ?? 500;
      const elapsed = Date.now() - started;
      // The last wait is cut short so that the last attempt falls within the budget.
      const delayMs = Math.min(policy?.maxDelayMs ?? 5000, Math.max(Number.isFinite(retryAfterMs) ? retryAfterMs : 0, base * 2 ** (attempt - 1)), (policy?.budgetMs ?? 0) - elapsed);
      if (!policy || delayMs <= 0) {
        const retriedForMs = attempt > 1 ? elapsed : undefined;
        if (result) return { ...result, retriedForMs };
        if (retriedForMs !== undefined) Object.assign(failure as object, { retriedForMs });
        throw failure;
      }
      const reason = unavailable ? unavailable.message : `${(failure as Error).message}: ${String((failure as { cause?: { code?: string } }).cause?.code ?? "")}`;
      policy.onRetry?.({ attempt, delayMs, reason });
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }

  private async executeOnce<TResult, TVars>(document: TypedDocumentNode<TResult, TVars>, variables?: TVars): Promise<{ status: number; body: ExecutionResult<TResult> }> {
    const res = await fetch(this.opts.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json, application/json",
        ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}),
        ...this.opts.headers,
      },
      body: JSON.stringify({ query: print(document), variables: variables ?? {} }),
    });
    const text = await res.text();
    let body: ExecutionResult<TResult>;
    try {
      body = JSON.parse(text) as ExecutionResult<TResult>;
    } catch {
      throw new GraphQLRequestError([{ message: `HTTP ${res.status}: ${text.slice(0, 200)}` }], res.status);
    }
    return { status: res.status, body };
  }

  /** Data, or a GraphQLRequestError carrying the errors. */
  async request<TResult, TVars>(document: TypedDocumentNode<TResult, TVars>, variables?: TVars): Promise<TResult> {
    const { status, body, retriedForMs } = await this.execute(document, variables);
    if (body.errors?.length || !body.data) throw new GraphQLRequestError(body.errors ?? [{ message: `HTTP ${status}: no data` }], status, retriedForMs);
    return body.data;
  }

  /**
   * A graphql-ws client on the same URL (ws[s]://…/graphql) with the token as connectionParams.authorization,
   * over Node's built-in WebSocket client (the `ws` package is the server's).
   */
  ws(options: { lazy?: boolean; retryAttempts?: number; keepAlive?: number; on?: ClientOptionsWs["on"] } = {}): WsClient {
    return createClient({
      url: this.opts.url.replace(/^http/, "ws"),
      webSocketImpl: globalThis.WebSocket,
      lazy: options.lazy ?? true,
      retryAttempts: options.retryAttempts ?? 0,
      keepAlive: options.keepAlive ?? 0,
      connectionParams: this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {},
      on: options.on,
    });
  }
}

/** Iterates a subscription through a graphql-ws client. */
export function subscribe<TResult, TVars>(client: WsClient, document: TypedDocumentNode<TResult, TVars>, variables?: TVars): AsyncIterableIterator<ExecutionResult<TResult>> {
  return client.iterate<TResult>({ query: print(document), variables: (variables ?? {}) as Record<string, unknown> }) as AsyncIterableIterator<ExecutionResult<TResult>>;
}
