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
import { StrictMode, useCallback, useEffect, useState } from "react";
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

// ---------------------------------------------------------------------------------------------
// Support (issue 17): acting for a customer within their grant (X-ReClo-Act-For, HTTP only).
// ---------------------------------------------------------------------------------------------

const ACT_FOR_KEY = "reclo:actFor";
/** The customer (e-mail or id) support acts for; empty: your own account. */
let actFor = localStorage.getItem(ACT_FOR_KEY) ?? "";
/** The last Authorization the editor sent, for the banner's own viewer query. */
let lastAuthorization: string | undefined;
const changed = new EventTarget();

const VIEWER_QUERY = "{ viewer { role email actingFor { email } grant { scope expiresAt note } } }";
interface ViewerInfo {
  role: string;
  email: string;
  actingFor: { email: string } | null;
  grant: { scope: string; expiresAt: string; note: string } | null;
}

async function loadViewer(): Promise<{ viewer?: ViewerInfo; error?: string }> {
  if (!lastAuthorization) return {};
  const res = await fetch(httpUrl, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: lastAuthorization, ...(actFor ? { "x-reclo-act-for": actFor } : {}) },
    body: JSON.stringify({ query: VIEWER_QUERY }),
  });
  const body = (await res.json()) as { data?: { viewer?: ViewerInfo }; errors?: { message: string; extensions?: { code?: string } }[] };
  if (body.errors?.length) return { error: `${body.errors[0]!.extensions?.code ?? "ERROR"}: ${body.errors[0]!.message}` };
  return { viewer: body.data?.viewer };
}

/** The signed-in role and, when acting on a grant, whose account and until when; sets the act-for customer. */
function SupportBanner() {
  const [state, setState] = useState<{ viewer?: ViewerInfo; error?: string }>({});
  const [draft, setDraft] = useState(actFor);
  const refresh = useCallback(() => {
    loadViewer().then(setState, (err: unknown) => setState({ error: String(err) }));
  }, []);
  useEffect(() => {
    changed.addEventListener("fetched", refresh);
    return () => changed.removeEventListener("fetched", refresh);
  }, [refresh]);
  const apply = (value: string) => {
    actFor = value.trim();
    if (actFor) localStorage.setItem(ACT_FOR_KEY, actFor);
    else localStorage.removeItem(ACT_FOR_KEY);
    setDraft(actFor);
    refresh();
  };
  const v = state.viewer;
  const staff = v && v.role !== "CUSTOMER";
  return (
    <div data-testid="support-banner" style={{ display: "flex", gap: "1em", alignItems: "center", padding: "4px 12px", font: "13px system-ui, sans-serif", background: v?.actingFor ? "#fde68a" : "#e5e7eb", color: "#111" }}>
      <span data-testid="support-banner-who">
        {state.error
          ? state.error
          : v
            ? v.actingFor && v.grant
              ? `${v.email} (${v.role}) acting for ${v.actingFor.email}: ${v.grant.scope} grant until ${new Date(v.grant.expiresAt).toLocaleString()}${v.grant.note ? ` (“${v.grant.note}”)` : ""}. Every operation is recorded in the customer's audit log.`
              : `Signed in as ${v.email} (${v.role})`
            : "Not signed in: run a query with an Authorization header"}
      </span>
      {(staff || actFor) && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            apply(draft);
          }}
          style={{ display: "flex", gap: "0.5em", marginLeft: "auto" }}
        >
          <label>
            Act for (customer e-mail, sent as X-ReClo-Act-For){" "}
            <input data-testid="act-for" value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="customer@example.com" />
          </label>
          <button type="submit">Act</button>
          <button type="button" onClick={() => apply("")}>
            Stop
          </button>
        </form>
      )}
    </div>
  );
}

/** Saved example documents for the common support questions (tabs, when nothing is saved yet). */
const SUPPORT_TABS = [
  {
    query: `# Support: why did this recovery fail? (set "Act for" above; the customer must have granted access)
query WhyDidThisRecoveryFail($id: ID!) {
  recovery(id: $id) {
    id state message failureReason createdAt completedAt
    events { step status attempt message createdAt }
    bootCheck { status reason screenText }
    diagnostics {
      providerErrorCodes workflowId runId historyUrl
      resources { composedKey importTaskId imageId snapshotIds instanceId securityGroupId }
      attempts { step attempts retries lastFailure lastFailureAt }
    }
  }
}
`,
    variables: `{ "id": "<recovery id>" }`,
  },
  {
    query: `# Support: where is this upload? (set "Act for" above)
query WhereIsThisUpload($id: ID!) {
  upload(id: $id) {
    id status sourceName bytesDone bytesTotal chunksSent chunksTotal rate eta
    startedAt lastActivityAt completedAt failureReason
    backup { id status kind createdAt }
  }
}
`,
    variables: `{ "id": "<upload id>" }`,
  },
  {
    query: `# Support: which recoveries failed lately?
query FailedRecoveries {
  recoveries(first: 20) { edges { node { id state failureReason createdAt diagnostics { providerErrorCodes historyUrl } } } }
}
`,
  },
  {
    query: `# Support: a customer's account status (works without a grant; send no "Act for")
query CustomerStatus($email: String!) {
  supportCustomer(email: $email) { email verified createdAt grantExpiresAt grantScope }
}
`,
    variables: `{ "email": "customer@example.com" }`,
  },
];

const fetcher: Fetcher = (params, opts) => {
  lastAuthorization = authorizationFrom(opts?.headers) ?? lastAuthorization;
  if (isSubscription(params, opts?.documentAST)) {
    // Acting for a customer is HTTP only (each operation checked against the grant and audited).
    if (actFor) return Promise.resolve({ errors: [{ message: "Subscriptions are not available while acting for a customer: press Stop, or use queries" }] } as unknown as Result);
    return subscribe(wsClientFor(authorizationFrom(opts?.headers)), params);
  }
  const headers = actFor ? { ...(opts?.headers ?? {}), "X-ReClo-Act-For": actFor } : opts?.headers;
  const result = httpFetcher(params, { ...opts, headers });
  void Promise.resolve(result).finally(() => changed.dispatchEvent(new Event("fetched")));
  return result;
};

// ---------------------------------------------------------------------------------------------

function App() {
  return (
    <div style={{ display: "flex", flexDirection: "column", height: "100%" }}>
      <SupportBanner />
      <div style={{ flex: 1, minHeight: 0 }}>
        <GraphiQL fetcher={fetcher} defaultTabs={[{ query: DEFAULT_QUERY }, ...SUPPORT_TABS]} defaultEditorToolsVisibility="headers">
          <GraphiQL.Logo>ReClo GraphiQL</GraphiQL.Logo>
        </GraphiQL>
      </div>
    </div>
  );
}

const container = document.getElementById("graphiql");
if (!container) throw new Error("#graphiql container missing");
createRoot(container).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
