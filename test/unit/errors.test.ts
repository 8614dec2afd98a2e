import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { GraphQLError, locatedError } from "graphql";
import { AppError, ErrorCode, badInput, busy, connectionFailure, notFound, rateLimited, unavailable } from "../../src/shared/errors";
import { appErrorOf, errorCodeOf, formatError, httpStatusOf, toGraphQLError, withHttpStatus, wsErrors } from "../../src/graphql/errors";
import { CONSOLE_MESSAGES, cliMessage, consoleMessage } from "../../src/client/errors";

const root = path.resolve(__dirname, "../..");

describe("AppError and its one mapping to GraphQL errors", () => {
  it("AppError is a plain Error with a code and details; src/shared/errors.ts imports nothing from graphql", () => {
    const err = notFound("Backup", "b1");
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(GraphQLError);
    expect([err.name, err.code, err.message, err.details]).toEqual(["AppError", "NOT_FOUND", "Backup b1 not found", { kind: "Backup", id: "b1" }]);
    expect(fs.readFileSync(path.join(root, "src/shared/errors.ts"), "utf8")).not.toMatch(/from "graphql"|type-graphql|@apollo/);
  });

  it("a resolver's AppError (wrapped by graphql-js as originalError) is formatted with its code and details, not as INTERNAL", () => {
    const located = locatedError(badInput("sourceName is too long", { field: "sourceName" }), undefined, ["createBackup"]);
    expect(located.extensions).toEqual({});
    expect(appErrorOf(located)?.code).toBe(ErrorCode.BAD_USER_INPUT);
    expect(errorCodeOf(located)).toBe(ErrorCode.BAD_USER_INPUT);
    let internal: unknown;
    // What Apollo hands formatError for it: its own default code, and a stack trace only in development.
    const formatted = formatError({ ...located.toJSON(), extensions: { code: "INTERNAL_SERVER_ERROR", stacktrace: ["AppError: …"] } }, located, false, (e) => (internal = e));
    expect(formatted).toEqual({ message: "sourceName is too long", path: ["createBackup"], extensions: { code: "BAD_USER_INPUT", field: "sourceName" } });
    expect(internal).toBeUndefined();
  });

  it("anything else is INTERNAL with a generic message, and reported", () => {
    const located = locatedError(new Error("secret detail"), undefined, ["backups"]);
    let internal: unknown;
    const formatted = formatError({ ...located.toJSON(), extensions: { code: "INTERNAL_SERVER_ERROR" } }, located, false, (e) => (internal = e));
    expect(formatted).toEqual({ message: "Internal server error", path: ["backups"], locations: undefined, extensions: { code: "INTERNAL" } });
    expect(internal).toBe(located);
    expect(errorCodeOf(located)).toBeUndefined();
    // An AppError with the INTERNAL code is hidden the same way.
    const own = formatError({ message: "target not configured" }, toGraphQLError(new AppError(ErrorCode.INTERNAL, "target not configured")), false);
    expect(own).toMatchObject({ message: "Internal server error", extensions: { code: "INTERNAL" } });
  });

  it("errors that abort a request before execution carry their HTTP status for Apollo", () => {
    const limited = rateLimited(30);
    expect(httpStatusOf(limited)).toBe(429);
    const gql = withHttpStatus(limited);
    expect(gql).toBeInstanceOf(GraphQLError);
    expect(gql.extensions).toEqual({ code: "RATE_LIMITED", retryAfterSeconds: 30, http: { status: 429, headers: new Map([["retry-after", "30"]]) } });
    expect(appErrorOf(gql)).toBe(limited);
    // BUSY is RATE_LIMITED with a reason, so every client that handles RATE_LIMITED handles it.
    const full = busy(2);
    expect(formatError({ message: full.message }, toGraphQLError(full), false)).toEqual({ message: full.message, extensions: { code: "RATE_LIMITED", reason: "BUSY", retryAfterSeconds: 2 } });
    // A dependency down: 503 with Retry-After, the dependency and retryAfter beside the code; its cause stays out of the answer.
    const down = unavailable("DATABASE", 2, Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:3306"), { code: "ECONNREFUSED" }));
    expect(withHttpStatus(down).extensions).toEqual({ code: "UNAVAILABLE", dependency: "DATABASE", retryAfter: 2, http: { status: 503, headers: new Map([["retry-after", "2"]]) } });
    expect(formatError({ message: down.message }, toGraphQLError(down), false)).toEqual({ message: down.message, extensions: { code: "UNAVAILABLE", dependency: "DATABASE", retryAfter: 2 } });
    // drizzle keeps what the pool threw as the `cause` of its DrizzleQueryError.
    const drizzleLike = Object.assign(new Error("Failed query: select 1\nparams: x"), { query: "select 1", params: ["x"], cause: down });
    expect(appErrorOf(new GraphQLError("x", { originalError: drizzleLike }))).toBe(down);
  });

  it("connection failures are recognised through cause chains, other errors are not", () => {
    expect(connectionFailure(Object.assign(new Error("x"), { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) }))).toBe("ECONNREFUSED");
    expect(connectionFailure(Object.assign(new Error("Connection lost"), { code: "PROTOCOL_CONNECTION_LOST", fatal: true }))).toBe("PROTOCOL_CONNECTION_LOST");
    expect(connectionFailure(Object.assign(new Error("14 UNAVAILABLE: No connection established"), { code: 14, details: "No connection established" }))).toBe("GRPC_UNAVAILABLE");
    expect(connectionFailure(Object.assign(new Error("Duplicate entry"), { code: "ER_DUP_ENTRY", errno: 1062 }))).toBeUndefined();
    expect(connectionFailure(Object.assign(new Error("NoSuchKey"), { name: "NoSuchKey", $metadata: { httpStatusCode: 404 } }))).toBeUndefined();
  });

  it("over WebSocket: refusals are GraphQLErrors with code and details; a stream that throws an AppError keeps them", () => {
    expect(toGraphQLError(badInput("too deep", { limit: "DEPTH" })).toJSON()).toEqual({ message: "too deep", extensions: { code: "BAD_USER_INPUT", limit: "DEPTH" } });
    // graphql-ws wraps what a stream throws in a GraphQLError of its own.
    const wrapped = new GraphQLError("Recovery r1 not found", { originalError: notFound("Recovery", "r1") });
    const plain = new GraphQLError("socket gone", { originalError: new Error("socket gone") });
    expect(wsErrors([wrapped, plain])).toEqual([{ message: "Recovery r1 not found", extensions: { code: "NOT_FOUND", kind: "Recovery", id: "r1" } }, { message: "socket gone" }]);
  });
});

describe("the words the CLI and the console show for a code (src/client/errors.ts)", () => {
  const settings = { url: "http://127.0.0.1:4000/graphql" };

  it("CLI", () => {
    expect(cliMessage({ code: "UNAUTHENTICATED", message: "Token expired: log in again", status: 401 }, settings)).toBe("Not logged in: run `reclo login`");
    expect(cliMessage({ code: "UNAUTHENTICATED", message: "x", status: 401 }, { ...settings, tokenSource: "RECLO_TOKEN" })).toMatch(/^Not logged in: RECLO_TOKEN /);
    expect(cliMessage({ code: "RATE_LIMITED", message: "Too many attempts; try again in 30 s", status: 429 }, settings)).toBe("Rate limited: Too many attempts; try again in 30 s");
    expect(cliMessage({ code: "RATE_LIMITED", message: "x", status: 200, extensions: { reason: "BUSY", retryAfterSeconds: 2 } }, settings)).toBe("The server is busy (too many logins at once), retry in 2 s");
    expect(cliMessage({ message: "HTTP 502: bad gateway", status: 502 }, settings)).toBe(`The server at ${settings.url} answered HTTP 502: bad gateway`);
    expect(cliMessage({ code: "NOT_FOUND", message: "Backup b1 not found", status: 200 }, settings)).toBe("Backup b1 not found (NOT_FOUND)");
    expect(cliMessage({ code: "UNAVAILABLE", message: "x", status: 503, extensions: { dependency: "OBJECT_STORE", retryAfter: 2 }, retriedForMs: 61_000 }, settings)).toBe(
      "The server's object store is unavailable right now (retried for 61 s); run the same command again once it is back: it resumes where it stopped",
    );
    expect(cliMessage({ code: "UNAVAILABLE", message: "x", status: 200, extensions: { dependency: "TEMPORAL" } }, settings)).toMatch(/^The server's workflow engine \(Temporal\) is unavailable right now; run the same command again/);
  });

  it("console", () => {
    expect(consoleMessage({ code: "RATE_LIMITED", message: "x", extensions: { retryAfterSeconds: 90 } })).toBe("Too many attempts. Please wait 2 minute(s) and try again.");
    expect(consoleMessage({ code: "RATE_LIMITED", message: "x" })).toBe("Too many attempts. Please wait a few minutes and try again.");
    // BUSY (the server's password hashing is at capacity): seconds, not minutes, and no "too many attempts".
    expect(consoleMessage({ code: "RATE_LIMITED", message: "x", extensions: { reason: "BUSY", retryAfterSeconds: 3 } })).toBe(
      "ReClo is busy right now (many people are logging in). Please try again in 3 seconds.",
    );
    expect(consoleMessage({ code: "RATE_LIMITED", message: "x", extensions: { reason: "BUSY" } })).toBe("ReClo is busy right now (many people are logging in). Please try again in a moment.");
    expect(consoleMessage({ code: "INTERNAL", message: "Internal server error" })).toBe("ReClo had a problem on its side. Please try again in a moment.");
    expect(consoleMessage({ code: "NOT_FOUND", message: "Backup b1 not found" })).toBe("Backup b1 not found");
    expect(consoleMessage({ code: "UNAVAILABLE", message: "x", extensions: { dependency: "DATABASE", retryAfter: 2 } })).toBe("ReClo can't reach its database right now. Please try again in 2 seconds.");
    expect(CONSOLE_MESSAGES.network).toMatch(/can't be reached/);
  });
});
