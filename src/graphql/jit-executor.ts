import type { ApolloServerOptionsWithGateway, BaseContext } from "@apollo/server";
import { execute, GraphQLError, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from "graphql";
import { compileQuery, isCompiledQuery, type CompiledQuery } from "graphql-jit";

/**
 * Queries and mutations over HTTP executed by graphql-jit: each distinct operation is compiled once
 * into a function that resolves its fields without graphql-js walking the document, its argument
 * values and its types for every field of every row (graphql-js's executor was the API's largest
 * share of CPU on a page of backups: bench/README, "graphql"). Resolvers, the context, errors
 * (with their `extensions.code`) and scalar serialization are the schema's own, as with graphql-js.
 *
 * Apollo Server runs a custom executor only through its gateway interface (the schema is handed to
 * Apollo as a gateway's, once, and never changes): everything else of its request pipeline (parse,
 * validation, the limits plugin, formatError) is unchanged. Subscriptions over WebSocket are run by
 * graphql-ws, fanned out (src/server/ws-fanout.ts), each event by `jitEventExecutor` below.
 *
 * An operation graphql-jit cannot compile is executed by graphql-js: nothing is refused here that
 * graphql-js would run.
 */
export function jitGateway(schema: GraphQLSchema, opts: JitOptions = {}): GatewayInterface {
  return {
    async load() {
      return { executor: jitExecutor(schema, opts) };
    },
    onSchemaLoadOrUpdate(callback) {
      callback({ apiSchema: schema, coreSupergraphSdl: "" });
      return () => {};
    },
    async stop() {},
  };
}

type GatewayInterface = ApolloServerOptionsWithGateway<BaseContext>["gateway"];
type GatewayExecutor = NonNullable<Awaited<ReturnType<GatewayInterface["load"]>>["executor"]>;

/**
 * An operation is compiled the second time its document is executed (Apollo keeps one parsed
 * document per query text, so entries go with it): compiling costs more than one execution, and a
 * document sent once, as anyone can before logging in, is only parsed, validated and executed, as
 * before. The first execution, and any operation graphql-jit cannot compile, are graphql-js's.
 */
type Entry = CompiledQuery | ExecutionResult | "seen";

export interface JitOptions {
  /** graphql-jit's compileQuery (a test counts the compilations). */
  compile?: (schema: GraphQLSchema, document: DocumentNode, operationName?: string) => CompiledQuery | ExecutionResult;
}

export function jitExecutor(schema: GraphQLSchema, opts: JitOptions = {}): GatewayExecutor {
  const compiled = compiledOnSecondUse(schema, opts);
  return async (rc) => {
    const operationName = rc.operationName ?? undefined;
    const variables = rc.request.variables ?? {};
    const byGraphqlJs = async () =>
      (await execute({ schema, document: rc.document, operationName, variableValues: variables, contextValue: rc.context })) as ExecutionResult<Record<string, unknown>>;
    const c = compiled(rc.document, operationName);
    if (!c) return byGraphqlJs();
    const result = (await c.query(undefined, rc.context, variables)) as ExecutionResult<Record<string, unknown>>;
    // No data at all: refused before any resolver ran (variables that do not coerce). graphql-js
    // says why in the errors Apollo recognises (BAD_USER_INPUT, HTTP 400), which graphql-jit's lack.
    if (result.data === undefined && result.errors?.length) return byGraphqlJs();
    return asGraphqlJsResult(result);
  };
}

/**
 * The execution of one event of a subscription (graphql-js's mapSourceToResponse: the operation's
 * selection run with the event as its root value) by graphql-jit, for the fan-out
 * (src/server/ws-fanout.ts), which runs it once per event for every subscriber of the same
 * document. graphql-js walked the document, coerced the variables and resolved every field again
 * for each event: 1.75 s of the API's 14 s busy in a 20 s profile at 1,000 events/s (bench/README,
 * "Session 17"). Compiled on the document's second event, like an HTTP operation; the first event,
 * and anything graphql-jit cannot compile or refuses, are graphql-js's.
 */
export function jitEventExecutor(schema: GraphQLSchema, opts: JitOptions = {}): (args: ExecutionArgs) => Promise<ExecutionResult> {
  const compiled = compiledOnSecondUse(schema, opts);
  return async (args) => {
    const c = compiled(args.document, args.operationName ?? undefined);
    if (!c) return execute(args);
    const result = (await c.query(args.rootValue, args.contextValue, (args.variableValues ?? {}) as Record<string, unknown>)) as ExecutionResult;
    // As jitExecutor: what graphql-jit refuses before any resolver ran is said in graphql-js's words.
    return result.data === undefined && result.errors?.length ? execute(args) : asGraphqlJsResult(result);
  };
}

/** Each (document, operation) compiled the second time it is asked for (undefined the first time, and when it does not compile). */
function compiledOnSecondUse(schema: GraphQLSchema, { compile = compileQuery }: JitOptions): (document: DocumentNode, operationName: string | undefined) => CompiledQuery | undefined {
  const entries = new WeakMap<DocumentNode, Map<string, Entry>>();
  return (document, operationName) => {
    let byName = entries.get(document);
    if (!byName) entries.set(document, (byName = new Map()));
    const key = operationName ?? "";
    let entry = byName.get(key);
    if (entry === undefined) {
      byName.set(key, "seen");
      return undefined;
    }
    if (entry === "seen") byName.set(key, (entry = compile(schema, document, operationName)));
    return isCompiledQuery(entry) ? entry : undefined;
  };
}

function asGraphqlJsResult<T extends ExecutionResult>(result: T): T {
  return result.errors ? ({ ...result, errors: result.errors.map(asGraphQLError) } as T) : result;
}

/**
 * graphql-jit's errors pass `instanceof GraphQLError` but are not graphql-js's: one whose cause has
 * no `extensions` has none at all (Apollo reads `extensions.code` of every error, and the failure
 * of that read turned every AppError into "Internal server error"). Made graphql-js errors with the
 * same message, path, locations and cause, so Apollo and formatError see what graphql-js gives them.
 */
function asGraphQLError(e: GraphQLError): GraphQLError {
  const err = new GraphQLError(e.message, { path: e.path, originalError: e.originalError ?? undefined, extensions: e.extensions });
  if (e.locations) Object.defineProperty(err, "locations", { value: e.locations, enumerable: true, writable: true, configurable: true });
  return err;
}
