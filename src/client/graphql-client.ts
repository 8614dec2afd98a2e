import { print, type ExecutionResult, type GraphQLFormattedError } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { createClient, type Client as WsClient, type ClientOptions as ClientOptionsWs } from "graphql-ws";

/** A GraphQL response with errors, with the first error's code at hand. */
export class GraphQLRequestError extends Error {
  constructor(
    readonly errors: readonly GraphQLFormattedError[],
    readonly status: number,
  ) {
    super(errors.map((e) => e.message).join("; "));
    this.name = "GraphQLRequestError";
  }

  get code(): string | undefined {
    return this.errors[0]?.extensions?.code as string | undefined;
  }
}

export interface ClientOptions {
  /** http(s)://host:port/graphql */
  url: string;
  token?: string;
  headers?: Record<string, string>;
}

/** The typed client the CLI and the tests use: only GraphQL, only generated documents. */
export class ReCloClient {
  constructor(private readonly opts: ClientOptions) {}

  withToken(token: string | undefined): ReCloClient {
    return new ReCloClient({ ...this.opts, token });
  }

  /** The raw result (data and errors), for callers that inspect partial results. */
  async execute<TResult, TVars>(document: TypedDocumentNode<TResult, TVars>, variables?: TVars): Promise<{ status: number; body: ExecutionResult<TResult> }> {
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
    const { status, body } = await this.execute(document, variables);
    if (body.errors?.length || !body.data) throw new GraphQLRequestError(body.errors ?? [{ message: `HTTP ${status}: no data` }], status);
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
