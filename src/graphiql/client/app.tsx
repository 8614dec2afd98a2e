/**
 * Browser entry of the self-hosted ReClo GraphiQL page (bundled by scripts/build-graphiql.mjs).
 *
 * Not part of the server build: see ./tsconfig.json (the root tsconfig excludes this folder).
 */

// MUST stay the first import: Monaco reads globalThis.MonacoEnvironment when it starts workers.
import "./setup-workers";
import "graphiql/style.css";

import { createGraphiQLFetcher } from "@graphiql/toolkit";
import type { Fetcher, FetcherOpts, FetcherParams } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { getOperationAST, parse } from "graphql";
import type { DocumentNode } from "graphql";
import { createClient } from "graphql-ws";
import type { Client, ExecutionResult } from "graphql-ws";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

const httpUrl = `${location.origin}/graphql`;
const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/graphql`;

const DEFAULT_QUERY = `# Welcome to ReClo GraphiQL.
#
# Most operations need a token. Get one with:
#
#   mutation {
#     logIn(input: {
#       email: "you@example.com"
#       password: "your password"
#     }) {
#       token
#     }
#   }
#
# then paste it into the Headers tab below:
#
#   { "Authorization": "Bearer <token>" }
#
# and press "Re-fetch GraphQL schema" (Shift-Ctrl-R) for the docs
# and autocompletion: introspection needs a token too.
#
# (subscriptions send it over the WebSocket
# as connectionParams.authorization)
#
# Ctrl-Enter runs, Ctrl-Space autocompletes.

`;

// ---------------------------------------------------------------------------------------------
// Fetcher: HTTP for queries/mutations, graphql-ws for subscriptions.
// ---------------------------------------------------------------------------------------------

const httpFetcher = createGraphiQLFetcher({
  url: httpUrl,
  // Apollo Server answers plain JSON; no need for the multipart (meros) code path.
  enableIncrementalDelivery: false,
});

/**
 * Decided on `params.query` (what is actually sent) rather than GraphiQL's `documentAST`, which
 * is derived from the editor with a debounce and can lag behind the text.
 */
function isSubscription(params: FetcherParams, documentAST: DocumentNode | undefined): boolean {
  let document: DocumentNode | undefined;
  try {
    document = parse(params.query);
  } catch {
    document = documentAST; // the server will report the syntax error
  }
  if (!document) return false;
  const operation = getOperationAST(document, params.operationName ?? undefined);
  return operation?.operation === "subscription";
}

/** The Authorization value from GraphiQL's headers editor (header names are case-insensitive). */
function authorizationFrom(headers: FetcherOpts["headers"]): string | undefined {
  if (!headers || typeof headers !== "object") return undefined;
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === "authorization" && typeof value === "string" && value.trim() !== "") {
      return value.trim();
    }
  }
  return undefined;
}

// connectionParams are fixed for the lifetime of a graphql-ws client, so keep one client per
// Authorization value and replace it when the user pastes another token.
let cachedWs: { authorization: string | undefined; client: Client } | undefined;

function wsClientFor(authorization: string | undefined): Client {
  if (cachedWs && cachedWs.authorization === authorization) return cachedWs.client;
  const previous = cachedWs?.client;
  const client = createClient({
    url: wsUrl,
    lazy: true,
    retryAttempts: 2,
    connectionParams: authorization ? { authorization } : {},
  });
  cachedWs = { authorization, client };
  if (previous) void previous.dispose();
  return client;
}

function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  return typeof value === "object" && value !== null && "code" in value && "reason" in value;
}

function toError(error: unknown): Error {
  if (error instanceof Error) return error;
  if (isCloseEvent(error)) {
    return new Error(`WebSocket closed with code ${error.code}${error.reason ? `: ${error.reason}` : ""}`);
  }
  if (typeof Event !== "undefined" && error instanceof Event) {
    return new Error(`WebSocket connection to ${wsUrl} failed`);
  }
  return new Error(String(error));
}

// What the toolkit's Fetcher type wants; over the wire these are plain (formatted) JSON results,
// which is all GraphiQL needs to display them.
type Result = ExecutionResult<Record<string, unknown>, Record<string, unknown>>;

/**
 * Wraps graphql-ws's iterator: GraphiQL stops a subscription by calling `return()` on
 * `value[Symbol.asyncIterator]()`, so the iterable must hand out itself, and `return()` must be
 * forwarded immediately (an async generator wrapper would only stop at its next `yield`).
 * Close events and GraphQL error arrays are turned into something GraphiQL can display.
 */
function subscribe(client: Client, params: FetcherParams): AsyncIterableIterator<Result> {
  const inner = client.iterate({
    query: params.query,
    operationName: params.operationName ?? undefined,
    variables: params.variables ?? undefined,
  });
  let finished = false;
  const iterator: AsyncIterableIterator<Result> = {
    async next(): Promise<IteratorResult<Result>> {
      if (finished) return { done: true, value: undefined };
      try {
        return (await inner.next()) as IteratorResult<Result>;
      } catch (error) {
        finished = true;
        if (Array.isArray(error)) return { done: false, value: { errors: error } as unknown as Result };
        throw toError(error);
      }
    },
    async return(): Promise<IteratorResult<Result>> {
      finished = true;
      await inner.return?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}

const fetcher: Fetcher = (params, opts) => {
  if (isSubscription(params, opts?.documentAST)) {
    return subscribe(wsClientFor(authorizationFrom(opts?.headers)), params);
  }
  return httpFetcher(params, opts);
};

// ---------------------------------------------------------------------------------------------

function App() {
  return (
    <GraphiQL fetcher={fetcher} defaultQuery={DEFAULT_QUERY} defaultEditorToolsVisibility="headers">
      <GraphiQL.Logo>ReClo GraphiQL</GraphiQL.Logo>
    </GraphiQL>
  );
}

const container = document.getElementById("graphiql");
if (!container) throw new Error("#graphiql container missing");
createRoot(container).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
