import { createClient, type Client } from "graphql-ws/client";
import type { TypedDocumentString } from "./generated/graphql";
import { clearSession, getSession } from "./session";
import { CONSOLE_MESSAGES } from "../../client/errors";

/** A failed API call, in words a person can act on, with the server's `extensions.code`. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code?: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

interface GraphQLErrorShape {
  message: string;
  extensions?: Record<string, unknown>;
}

let onSessionEnded: () => void = () => {};

/** Called when the server says the token is no longer valid (expired, revoked, logged out elsewhere). */
export function setSessionEndedHandler(handler: () => void): void {
  onSessionEnded = handler;
}

let onReauthRequired: (() => Promise<boolean>) | undefined;

/**
 * Called when a request answers REAUTH_REQUIRED (deleting, keeping less: issue 18): asks for the
 * password and reauthenticates; true when it did, and the request is then sent once more.
 */
export function setReauthHandler(handler: () => Promise<boolean>): void {
  onReauthRequired = handler;
}

function endSession(): void {
  if (!getSession()) return;
  clearSession();
  closeLive();
  onSessionEnded();
}

function toApiError(errors: readonly GraphQLErrorShape[], sentToken: boolean): ApiError {
  const first = errors[0] ?? { message: "Something went wrong." };
  const code = typeof first.extensions?.code === "string" ? first.extensions.code : undefined;
  // A wrong password on reauthenticate is UNAUTHENTICATED too (BAD_CREDENTIALS), but the session is fine.
  if (code === "UNAUTHENTICATED" && sentToken && first.extensions?.reason !== "BAD_CREDENTIALS") endSession();
  return new ApiError(first.message, code, first.extensions ?? {});
}

const NETWORK_MESSAGE = CONSOLE_MESSAGES.network;

/** The variables argument: optional for an operation that declares none, required otherwise. */
type VariablesArg<V> = V extends Record<string, never> ? [variables?: V] : [variables: V];

/**
 * One GraphQL request over HTTP (POST /graphql) with the session's token, if any. An answer of
 * REAUTH_REQUIRED shows the password dialog (setReauthHandler) and sends the request once more.
 */
export async function gql<T, V>(document: TypedDocumentString<T, V>, ...[variables]: VariablesArg<V>): Promise<T> {
  try {
    return await send(document, variables);
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "REAUTH_REQUIRED" && onReauthRequired)) throw error;
    if (!(await onReauthRequired())) throw error;
    return send(document, variables);
  }
}

async function send<T, V>(document: TypedDocumentString<T, V>, variables: V | undefined): Promise<T> {
  const query = document.toString();
  const session = getSession();
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/graphql-response+json, application/json",
  };
  if (session) headers.authorization = `Bearer ${session.token}`;
  let res: Response;
  try {
    res = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query, variables: variables ?? {} }), credentials: "omit", cache: "no-store" });
  } catch {
    throw new ApiError(NETWORK_MESSAGE, "NETWORK");
  }
  let body: { data?: T | null; errors?: GraphQLErrorShape[] };
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new ApiError(res.status >= 500 ? CONSOLE_MESSAGES.serverUnreadable : NETWORK_MESSAGE, res.status >= 500 ? "INTERNAL" : "NETWORK");
  }
  if (body.errors?.length) throw toApiError(body.errors, Boolean(session));
  if (!body.data) throw new ApiError(CONSOLE_MESSAGES.emptyAnswer, "INTERNAL");
  return body.data;
}

// ---------------------------------------------------------------------------------------------
// Live updates: one graphql-ws client per session, on the same path as HTTP.

export type LiveStatus = "connected" | "reconnecting";
let live: { client: Client; token: string } | undefined;
let activeSubscriptions = 0;
let status: LiveStatus = "connected";
const statusListeners = new Set<(s: LiveStatus) => void>();

function setStatus(next: LiveStatus): void {
  if (next === status) return;
  status = next;
  for (const listener of statusListeners) listener(next);
}

export function onLiveStatus(listener: (s: LiveStatus) => void): () => void {
  statusListeners.add(listener);
  return () => statusListeners.delete(listener);
}

function liveClient(token: string): Client {
  if (live?.token === token) return live.client;
  closeLive();
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/graphql`;
  const client = createClient({
    url,
    lazy: true,
    connectionParams: { authorization: `Bearer ${token}` },
    // Keep trying for as long as the page is open: a recovery runs on the server either way, and
    // re-subscribing starts from its current state.
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: async (retries) => {
      const ms = Math.min(1000 * 2 ** retries, 5000) + Math.floor(Math.random() * 500);
      await new Promise((resolve) => setTimeout(resolve, ms));
    },
    keepAlive: 15_000,
    on: {
      connected: () => setStatus("connected"),
      closed: (event) => {
        const code = (event as { code?: number } | undefined)?.code;
        if (code === 4401) {
          endSession();
          return;
        }
        if (activeSubscriptions > 0) setStatus("reconnecting");
      },
    },
  });
  live = { client, token };
  return client;
}

export function closeLive(): void {
  const old = live;
  live = undefined;
  setStatus("connected");
  if (old) void old.client.dispose();
}

export interface LiveSink<T> {
  next(data: T): void;
  error(error: ApiError): void;
  complete(): void;
}

/** Starts a subscription; returns a function that stops it. */
export function subscribe<T, V extends Record<string, unknown>>(document: TypedDocumentString<T, V>, variables: V, sink: LiveSink<T>): () => void {
  const session = getSession();
  if (!session) {
    sink.error(new ApiError(CONSOLE_MESSAGES.sessionEnded, "UNAUTHENTICATED"));
    return () => {};
  }
  activeSubscriptions += 1;
  let done = false;
  const finish = () => {
    if (done) return false;
    done = true;
    activeSubscriptions -= 1;
    if (activeSubscriptions === 0) setStatus("connected");
    return true;
  };
  const stop = liveClient(session.token).subscribe<T>(
    { query: document.toString(), variables },
    {
      next: (result) => {
        if (result.errors?.length) {
          if (finish()) sink.error(toApiError(result.errors as GraphQLErrorShape[], true));
          return;
        }
        if (result.data) sink.next(result.data as T);
      },
      error: (err) => {
        if (!finish()) return;
        if (Array.isArray(err)) sink.error(toApiError(err as GraphQLErrorShape[], true));
        else if ((err as { code?: number })?.code === 4401) sink.error(new ApiError(CONSOLE_MESSAGES.sessionEnded, "UNAUTHENTICATED"));
        else sink.error(new ApiError(NETWORK_MESSAGE, "NETWORK"));
      },
      complete: () => {
        if (finish()) sink.complete();
      },
    },
  );
  return () => {
    if (finish()) stop();
  };
}
