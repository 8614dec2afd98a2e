import { createHash, timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import express, { type NextFunction, type Request, type Response } from "express";
import { ApolloServer, type ApolloServerPlugin, type GraphQLRequestContextDidResolveOperation } from "@apollo/server";
import { expressMiddleware } from "@as-integrations/express5";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from "@apollo/server/plugin/disabled";
import { WebSocketServer } from "ws";
import { MessageType } from "graphql-ws";
import { GraphQLError, execute, parse, validate, type DocumentNode, type ExecutionArgs, type GraphQLSchema } from "graphql";
import type { Config } from "../config";
import type { Logger } from "../logger";
import type { Services } from "../services";
import type { Context } from "../graphql/context";
import { WsOperationContext } from "./ws-context";
import { ACT_FOR_HEADER, checkActingOperation } from "../graphql/support-acting";
import { checkAgentOperation } from "../graphql/agent-scope";
import { agentIdentity, isAgentKey, type AgentScope } from "../agent-keys/agent-key.service";
import { jitEventExecutor, jitGateway } from "../graphql/jit-executor";
import { buildAppSchema } from "../graphql/schema";
import { checkTokens, operationAnalyzer, type OperationAnalysis } from "../graphql/limits";
import type { EventBus } from "../events/event-bus";
import { Topic } from "../events/topics";
import { AppError, ErrorCode, badInput, rateLimited, unauthenticated } from "../shared/errors";
import { appErrorOf, errorCodeOf, formatError, formattedAppError, httpStatusOf, requestErrorAsGraphQL, toGraphQLError, withHttpStatus, wsErrors } from "../graphql/errors";
import { bearerToken } from "../auth/token";
import type { Authenticated } from "../auth/auth.service";
import { newId } from "../shared/ids";
import { graphiqlRouter, defaultGraphiqlAssetsDir } from "../graphiql/graphiql.route";
import { consoleRouter, defaultConsoleAssetsDir } from "../console/console.route";
import type { RateLimiter } from "../auth/rate-limiter";
import { SocketRegistry, WsCloseCode } from "./socket-registry";
import { DocumentCache, UserConnections } from "./ws-limits";
import { SubscriptionFanout, type FanoutSink } from "./ws-fanout";
import { useWsServer } from "./graphql-ws-server";
import { graphqlPostHandler, isPlainGraphqlPost } from "./graphql-post";
import { clientAddress, isLoopback } from "../auth/client-address";
import type { Availability } from "../shared/availability";

export interface AppDeps {
  config: Config;
  logger: Logger;
  services: Services;
  /** The domain events: GraphQL subscriptions and session revocations listen to them. */
  events: EventBus;
  /** Per-user rate of expensive fields (the runtime's limiter: Redis when configured). */
  limiter: RateLimiter;
  /**
   * The dependencies' breakers (readiness checks run in the background): /readyz answers from its
   * last results at once, and WebSocket subscriptions need Redis to be up when it is configured.
   */
  availability: Availability;
  graphiqlAssetsDir?: string;
  consoleAssetsDir?: string;
  /** How long shutdown waits for in-flight requests before cutting connections. */
  stopGracePeriodMs?: number;
}

export interface RunningApp {
  httpServer: http.Server;
  schema: GraphQLSchema;
  url: string;
  graphqlUrl: string;
  wsUrl: string;
  sockets: SocketRegistry;
  /** Parsed documents kept for authenticated WebSocket connections (bounded in bytes). */
  wsDocuments: DocumentCache;
  /** Open operations of each signed-in user over WebSocket, in this process. */
  wsUsers: UserConnections;
  /** Shared executions of live-state subscriptions (one per document, variables and user). */
  wsFanout: SubscriptionFanout;
  stop(): Promise<void>;
}

declare module "express-serve-static-core" {
  interface Request {
    requestId?: string;
  }
}

interface WsExtra extends Record<PropertyKey, unknown> {
  auth?: Authenticated;
  /** The connection authenticated with an agent key (issue 18). */
  agent?: AgentScope;
  requestId: string;
  ip?: string;
  userAgent?: string;
}

export async function startApp(deps: AppDeps): Promise<RunningApp> {
  const { config, logger, services } = deps;
  const exposeStack = config.env === "development";
  const schema = await buildAppSchema(deps.events);
  const analyzeOperation = operationAnalyzer(schema, config.limits);
  const sockets = new SocketRegistry();

  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", config.http.trustProxy);
  // Express compiles the setting; WebSocket upgrades never pass through Express, so they use it directly.
  const trustProxy = app.get("trust proxy fn") as (address: string, hop: number) => boolean;
  // POST /graphql with a JSON body skips Express (see graphql-post.ts); everything else is Express's.
  // (Set once Apollo has started; until then every request is Express's.)
  const lean: { graphqlPost?: (req: http.IncomingMessage, res: http.ServerResponse) => void } = {};
  const httpServer = http.createServer((req, res) => {
    if (lean.graphqlPost && isPlainGraphqlPost(req)) {
      track(req, res, "/graphql");
      lean.graphqlPost(req, res);
    } else app(req, res);
  });

  // Request id + access log (no headers, no bodies: tokens and passwords never reach the log).
  // Every request is logged at debug. At info: everything but routine GraphQL answers (status < 400,
  // faster than ACCESS_LOG_SLOW) — those are counted and summed up once a minute ("graphql requests"),
  // since writing a line for each cost a busy API more CPU than running its query.
  const slowMs = config.http.accessLogSlowMs ?? 1000;
  const routine = { count: 0, totalMs: 0, maxMs: 0, since: Date.now() };
  const summarizeRoutine = () => {
    if (!routine.count) return;
    logger.info(
      { requests: routine.count, meanMs: Math.round((routine.totalMs / routine.count) * 10) / 10, maxMs: routine.maxMs, seconds: Math.round((Date.now() - routine.since) / 1000) },
      "graphql requests",
    );
    Object.assign(routine, { count: 0, totalMs: 0, maxMs: 0, since: Date.now() });
  };
  const routineSummary = setInterval(summarizeRoutine, 60_000).unref();
  /** Gives the request its id (X-Request-Id, or a new one) and logs it when it is answered. */
  const track = (req: http.IncomingMessage & { requestId?: string }, res: http.ServerResponse, path: string) => {
    const incoming = req.headers["x-request-id"];
    const requestId = typeof incoming === "string" && /^[\w.-]{1,64}$/.test(incoming) ? incoming : newId();
    req.requestId = requestId;
    res.setHeader("x-request-id", requestId);
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const entry = () => ({ requestId, method: req.method, path, status: res.statusCode, ms });
      if (res.statusCode < 400 && ms < slowMs && path === "/graphql") {
        routine.count++;
        routine.totalMs += ms;
        routine.maxMs = Math.max(routine.maxMs, ms);
        if (logger.isLevelEnabled("debug")) logger.debug(entry(), "http request");
      } else logger.info(entry(), "http request");
    });
  };
  app.use((req: Request, res: Response, next: NextFunction) => {
    track(req, res, req.originalUrl.split("?")[0]!);
    next();
  });

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok", uptimeSeconds: Math.round(process.uptime()) });
  });

  // Readiness details (which dependency fails, and its error text) are for operators: callers on
  // loopback (after trusted proxies) or with READYZ_TOKEN. Everyone else gets the status only.
  const readyzTokenHash = config.http.readyzToken ? sha256(config.http.readyzToken) : undefined;
  const mayReadDetails = (req: Request): boolean => {
    if (isLoopback(req.ip)) return true;
    const token = bearerToken(req.headers.authorization);
    return Boolean(readyzTokenHash && token !== undefined && timingSafeEqual(sha256(token), readyzTokenHash));
  };
  app.get("/readyz", async (req, res) => {
    const checks: Record<string, { ok: boolean; ms: number; error?: string }> = {};
    for (const [name, { ok, ms, error }] of Object.entries(deps.availability.snapshot())) checks[name] = error === undefined ? { ok, ms } : { ok, ms, error };
    const ready = Object.values(checks).every((c) => c.ok);
    // Each change of a check is logged once (by the runtime), not on every probe.
    const status = ready ? "ready" : "not ready";
    res
      .status(ready ? 200 : 503)
      .set("Cache-Control", "no-store")
      .json(mayReadDetails(req) ? { status, checks } : { status });
  });

  app.use("/graphiql", graphiqlRouter(deps.graphiqlAssetsDir ?? defaultGraphiqlAssetsDir()));
  // The web console at `/`; the JSON service map at `/api` (and at `/` for `Accept: application/json`).
  const serviceMap = { service: "reclo", console: "/", graphql: "/graphql", graphiql: "/graphiql", health: "/healthz", ready: "/readyz" };
  app.get("/api", (_req, res) => {
    res.json(serviceMap);
  });
  // Verification screenshots are presigned GETs on the object store: the console may show those.
  const screenshotOrigin = await services.instances
    .presignArtifact("console/csp-probe.png")
    .then((p) => [new URL(p.url).origin])
    .catch(() => []);
  app.use(consoleRouter(deps.consoleAssetsDir ?? defaultConsoleAssetsDir(), serviceMap, { imageOrigins: screenshotOrigin }));

  /** Refuses an operation over its per-user rate when it selects expensive fields; `who` is a user id or an address. */
  const checkExpensiveRate = async (analysis: OperationAnalysis, who: string): Promise<AppError | undefined> => {
    if (!analysis.expensiveFields) return undefined;
    const r = await deps.limiter.hit(`expensive:${who}`, config.expensiveFieldRate.limit, config.expensiveFieldRate.windowMs);
    return r.allowed ? undefined : rateLimited(r.retryAfterSeconds);
  };

  const documents = new DocumentCache(config.ws.documentCacheBytes);
  const userConnections = new UserConnections();
  /** A `next` payload as graphql-ws would send it: errors formatted (and an unexpected one logged). */
  const nextPayload = <R extends { errors?: readonly GraphQLError[] }>(result: R): R => {
    if (!result.errors?.length) return result;
    return {
      ...result,
      errors: result.errors.map((e) => formatError(e.toJSON(), e, exposeStack, (err) => logger.error({ err }, "unexpected error in subscription"))),
    } as unknown as R;
  };
  // A recovery followed from ten tabs is executed once per event, serialized once, and sent ten times.
  const fanout = new SubscriptionFanout({
    stateFields: new Set(["recoveryProgress", "uploadProgress"]),
    userOf: (c) => (c as Context).auth?.user.id,
    serialize: (result) => ownBuffer(JSON.stringify(nextPayload(result))),
    // Each event compiled by graphql-jit (src/graphql/jit-executor.ts), not walked by graphql-js.
    execute: jitEventExecutor(schema),
  });
  /** Each subscription's socket, for the fan-out's pre-serialized results (set by onSubscribe, read by subscribe). */
  const sinks = new WeakMap<ExecutionArgs, FanoutSink>();
  // graphql-ws on the same port and path.
  const wsServer = new WebSocketServer({ server: httpServer, path: "/graphql", maxPayload: config.http.maxBodyBytes });
  const wsCleanup = useWsServer<Record<string, unknown>, WsExtra>(
    {
      schema,
      // Internal error texts in close reasons only in development (graphql-ws would read NODE_ENV itself).
      isProd: !exposeStack,
      // Our own graphql functions: one graphql realm for schema and execution.
      execute,
      subscribe: (args) => fanout.subscribe(args, sinks.get(args)),
      // A socket that never says connection_init is closed (4408) instead of being held open.
      connectionInitWaitTimeout: config.ws.initTimeoutMs,
      onConnect: async (ctx) => {
        const extra = ctx.extra as unknown as WsExtra & { request: http.IncomingMessage };
        extra.requestId = newId();
        extra.ip = clientAddress(extra.request, trustProxy);
        extra.userAgent = extra.request.headers["user-agent"];
        // What the upgrade request had to say is copied above: do not keep the request (its headers,
        // raw headers and stream state) for as long as the socket lives. Cleared, not deleted: a
        // deleted property turns the object into a dictionary-mode one (~450 bytes per connection).
        (extra as { request?: unknown }).request = undefined;
        // Support acts for a customer over HTTP only (each operation checked against the grant and
        // audited): a connection that asks to act for someone is refused (4403 Forbidden).
        if (ctx.connectionParams && Object.keys(ctx.connectionParams).some((k) => k.toLowerCase() === ACT_FOR_HEADER || k.toLowerCase() === "actfor")) return false;
        const raw = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        const token = bearerToken(typeof raw === "string" ? raw : undefined);
        if (token === undefined) return true; // anonymous: every operation is refused, unparsed
        try {
          if (isAgentKey(token)) {
            ({ auth: extra.auth, agent: extra.agent } = agentIdentity(await services.agentKeys.authenticate(token, extra.ip)));
          } else extra.auth = await services.auth.authenticate(token);
        } catch (err) {
          const appError = appErrorOf(err);
          if (appError?.code === ErrorCode.UNAVAILABLE) {
            // Not the token's fault: "try again later" (1013), with what is down.
            logger.warn({ err, requestId: extra.requestId }, "websocket connection refused: a dependency is unavailable");
            ctx.extra.socket.close(WsCloseCode.TryAgainLater, appError.message);
            return false;
          }
          if (!appError) throw err;
          ctx.extra.socket.close(WsCloseCode.Unauthorized, appError.message);
          return false;
        }
        sockets.add(ctx.extra.socket, { userId: extra.auth.user.id, sessionId: extra.auth.session.id, expiresAt: extra.auth.session.expiresAt });
        userConnections.add(extra.auth.user.id, ctx);
        return true;
      },
      onClose: (ctx) => {
        if (ctx.extra.auth) userConnections.remove(ctx.extra.auth.user.id, ctx);
      },
      onSubscribe: async (ctx, id, payload) => {
        const extra = ctx.extra;
        // Nothing is parsed, cached or looked up for a connection without a valid token.
        if (!extra.auth) return [toGraphQLError(unauthenticated('Operations over WebSocket need a token: connect with connectionParams.authorization = "Bearer <token>"'))];
        const userId = extra.auth.user.id;
        // graphql-ws has already registered this operation in ctx.subscriptions.
        const open = Object.keys(ctx.subscriptions).length;
        if (open > config.ws.maxSubscriptionsPerConnection)
          return [
            toGraphQLError(
              badInput(`At most ${config.ws.maxSubscriptionsPerConnection} operations per connection: complete one first`, {
                limit: "SUBSCRIPTIONS_PER_CONNECTION",
                maxSubscriptionsPerConnection: config.ws.maxSubscriptionsPerConnection,
              }),
            ),
          ];
        if (userConnections.operations(userId, config.ws.maxSubscriptionsPerUser) > config.ws.maxSubscriptionsPerUser)
          return [
            toGraphQLError(
              badInput(`At most ${config.ws.maxSubscriptionsPerUser} operations per user: complete one first`, {
                limit: "SUBSCRIPTIONS_PER_USER",
                maxSubscriptionsPerUser: config.ws.maxSubscriptionsPerUser,
              }),
            ),
          ];
        // Many clients send the same few subscription documents: parse and validate each once.
        const cached = documents.entry(payload.query);
        let document = cached?.document;
        // graphql-ws keeps this payload as long as the subscription runs: let it keep the shared text.
        if (cached) (payload as { query: string }).query = cached.query;
        if (!document) {
          const tokens = checkTokens(payload.query, config.limits.maxTokens);
          if (tokens instanceof AppError) return [toGraphQLError(tokens)];
          let parsed: DocumentNode;
          try {
            parsed = parse(payload.query, { maxTokens: config.limits.maxTokens });
          } catch (err) {
            return [requestErrorAsGraphQL(err as GraphQLError, exposeStack)];
          }
          const errors = validate(schema, parsed);
          if (errors.length) return errors.map((e) => requestErrorAsGraphQL(e, exposeStack, "GRAPHQL_VALIDATION_FAILED"));
          documents.set(payload.query, parsed, tokens);
          document = parsed;
        }
        const analysis = analyzeOperation(document, payload.operationName, payload.variables);
        if (analysis instanceof AppError) return [toGraphQLError(analysis)];
        try {
          // Live updates travel through Redis when it is configured: without it they would never arrive.
          deps.availability.assertUp("REDIS");
          if (!(await (extra.agent ? services.agentKeys.isActive(extra.agent.keyId) : services.auth.isSessionActive(extra.auth.session.id)))) {
            ctx.extra.socket.close(WsCloseCode.Unauthorized, "Token expired or revoked: log in again");
            return [toGraphQLError(new AppError(ErrorCode.UNAUTHENTICATED, "Token expired or revoked: log in again"))];
          }
          const limited = await checkExpensiveRate(analysis, `user:${userId}`);
          if (limited) return [toGraphQLError(limited)];
        } catch (err) {
          const appError = appErrorOf(err);
          if (!appError) throw err;
          if (appError.code === ErrorCode.UNAVAILABLE) logger.warn({ err, requestId: extra.requestId }, "operation refused: a dependency is unavailable");
          return [toGraphQLError(appError)];
        }
        const contextValue: Context = new WsOperationContext(extra.requestId ?? newId(), extra.ip, extra.userAgent, extra.auth, services, config.limits, logger, extra.agent);
        if (extra.agent) {
          try {
            await checkAgentOperation(contextValue, schema, document, payload.operationName, payload.variables);
          } catch (err) {
            const appError = appErrorOf(err);
            if (!appError) throw err;
            return [toGraphQLError(appError)];
          }
        }
        const args: ExecutionArgs = { schema, document, operationName: payload.operationName ?? undefined, variableValues: payload.variables, contextValue };
        // A shared execution's results are sent from here as graphql-ws's own `next` message would be
        // (same frame, same order: nothing else is sent for this operation until its stream ends),
        // only while graphql-ws still has the operation (not after the client completed it). The frame
        // is one Buffer sent as a text message: the payload is encoded once per result, not once per
        // subscriber. The head stays a string: a small Buffer kept per subscription would be a slice
        // of Buffer's shared pool and keep its whole 64 KB slab alive as long as the subscription.
        const socket = ctx.extra.socket;
        const head = `{"id":${JSON.stringify(id)},"type":"${MessageType.Next}","payload":`;
        const headBytes = Buffer.byteLength(head);
        sinks.set(args, {
          send: (payloadJson) => {
            if (!(id in ctx.subscriptions) || socket.readyState !== socket.OPEN) return;
            const frame = Buffer.allocUnsafe(headBytes + payloadJson.length + 1);
            frame.write(head, 0);
            payloadJson.copy(frame, headBytes);
            frame[frame.length - 1] = 0x7d; // "}"
            socket.send(frame, TEXT_FRAME);
          },
        });
        return args;
      },
      onNext: (_ctx, _id, _payload, _args, result) => nextPayload(result as { errors?: readonly GraphQLError[] }) as typeof result,
      // A stream that fails after it started: graphql-ws sends what it threw as is (no formatError),
      // so an AppError among them is given its code and details here.
      onError: (_ctx, _id, _payload, errors) => wsErrors(errors),
    },
    wsServer,
  );

  // Log-out anywhere (any API process, through the event bus) closes this process's sockets of that session.
  const revocations = deps.events.subscribe(Topic.SESSIONS_REVOKED);
  void (async () => {
    for await (const event of revocations) {
      const closed = sockets.revoke(event);
      if (closed) logger.info({ userId: event.userId, closed }, "closed websocket connections of revoked sessions");
    }
  })().catch((err: unknown) => logger.error({ err }, "session revocation listener failed"));

  // The bearer token of each HTTP request, checked only once the operation is within its limits.
  // Carried on the context under a symbol (Apollo hands plugins and resolvers a shallow copy).
  const requestToken = Symbol("requestToken");
  /** X-ReClo-Act-For: the customer a support session acts for (issue 17). */
  const requestActFor = Symbol("requestActFor");
  type HttpContext = Context & { [requestToken]?: string; [requestActFor]?: string };
  const limitsPlugin: ApolloServerPlugin<Context> = {
    async requestDidStart() {
      return {
        // Limits first, then introspection, then the token, then the rate of expensive fields: an
        // abusive request costs one linear pass over its document and nothing else.
        async didResolveOperation(rc) {
          try {
            await checkRequest(rc);
          } catch (err) {
            if (err instanceof GraphQLError) throw err;
            // A dependency down during the token lookup or the rate check: the whole request is refused (503, Retry-After).
            const appError = appErrorOf(err);
            if (appError) throw withHttpStatus(appError);
            throw err;
          }
        },
        // Answers are per user and change with every backup: never cached. (Apollo's cache-control
        // plugin said the same, having computed a policy for every resolved field; it is disabled.)
        async willSendResponse(rc) {
          rc.response.http.headers.set("cache-control", "no-store");
        },
        async didEncounterErrors(rc) {
          for (const err of rc.errors) {
            const code = errorCodeOf(err);
            if (code === ErrorCode.UNAVAILABLE) rc.contextValue?.logger?.warn({ err: err.originalError ?? err, operation: rc.operationName }, "a dependency is unavailable");
            else if (!code || code === ErrorCode.INTERNAL || code === "INTERNAL_SERVER_ERROR")
              rc.contextValue?.logger?.error({ err: err.originalError ?? err, operation: rc.operationName }, "unexpected error");
          }
        },
      };
    },
  };
  /** Limits first, then introspection, then the token, then the rate of expensive fields. */
  async function checkRequest(rc: GraphQLRequestContextDidResolveOperation<Context>): Promise<void> {
    const analysis = analyzeOperation(rc.document, rc.operationName, rc.request.variables);
    if (analysis instanceof AppError) throw withHttpStatus(analysis);
    const ctx = rc.contextValue;
    const token = (ctx as HttpContext)[requestToken];
    if (analysis.introspection && config.introspection !== "public" && token === undefined)
      throw withHttpStatus(unauthenticated("Introspection needs a token: send `Authorization: Bearer <token>` (GraphiQL: Headers tab, then re-fetch the schema)"));
    if (token !== undefined && isAgentKey(token)) {
      // An agent key (issue 18): its owner, within the key's one source (checked below).
      const { auth, agent } = agentIdentity(await services.agentKeys.authenticate(token, ctx.ip));
      ctx.auth = auth;
      ctx.agent = agent;
      ctx.logger = logger.child({ requestId: ctx.requestId, userId: agent.userId, agentKeyId: agent.keyId });
    } else if (token !== undefined) {
      ctx.auth = await services.auth.authenticate(token);
      ctx.logger = logger.child({ requestId: ctx.requestId, userId: ctx.auth.user.id });
    }
    const limited = await checkExpensiveRate(analysis, ctx.auth ? `user:${ctx.auth.user.id}` : `ip:${ctx.ip ?? "unknown"}`);
    if (limited) throw withHttpStatus(limited);
    const actFor = (ctx as HttpContext)[requestActFor];
    if (ctx.agent) {
      // Only what the key's scope allows, for its own source; never acting for anyone.
      if (actFor !== undefined) throw withHttpStatus(new AppError(ErrorCode.FORBIDDEN, "An agent key may not act for anyone", { reason: "AGENT_KEY_SCOPE" }));
      await checkAgentOperation(ctx, schema, rc.document, rc.operationName, rc.request.variables);
    }
    if (actFor !== undefined) {
      if (!ctx.auth) throw withHttpStatus(unauthenticated());
      // After the rate check (a request refused there is not audited as a read). FORBIDDEN for
      // customers, NO_SUPPORT_GRANT without the customer's live grant; then the grant's scope and
      // the sensitive fields are enforced, and the operation audited, before it runs.
      const acting = await services.support.actFor(ctx.auth.user, actFor);
      ctx.actingFor = acting.customer;
      ctx.grant = acting.grant;
      ctx.logger = ctx.logger.child({ actingFor: acting.customer.id, grantId: acting.grant.id });
      await checkActingOperation(ctx, schema, rc.document, rc.operationName, rc.request.variables);
    }
  }

  const apollo = new ApolloServer<Context>({
    // The schema, executed by graphql-jit (src/graphql/jit-executor.ts).
    gateway: jitGateway(schema),
    // Introspection is allowed here and gated per request by the limits plugin (INTROSPECTION).
    introspection: true,
    // A backstop: the limits plugin refuses longer documents before parsing, with a typed error.
    parseOptions: { maxTokens: config.limits.maxTokens },
    // Signals are handled once, by the process (drain, then close pools): not by Apollo as well.
    stopOnTerminationSignals: false,
    includeStacktraceInErrorResponses: exposeStack,
    formatError: (formatted, error) => formatError(formatted, error, exposeStack, (err) => logger.error({ err }, "internal error")),
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer, stopGracePeriodMillis: deps.stopGracePeriodMs ?? 10_000 }),
      ApolloServerPluginLandingPageDisabled(),
      // No cache hints in this schema: without the plugin Apollo wraps no resolver (it ran a hook per field).
      ApolloServerPluginCacheControlDisabled(),
      limitsPlugin,
      {
        async serverWillStart() {
          return {
            async drainServer() {
              await wsCleanup.dispose();
            },
          };
        },
      },
    ],
  });
  await apollo.start();

  // Tokens are counted before Apollo parses anything (its plugins cannot answer with a typed
  // error before parsing): a long document costs one bounded lexer run.
  const tooManyTokens = (query: unknown): { status: number; body: unknown } | undefined => {
    const tokens = typeof query === "string" ? checkTokens(query, config.limits.maxTokens) : 0;
    return tokens instanceof AppError ? { status: httpStatusOf(tokens), body: { errors: [formattedAppError(tokens)] } } : undefined;
  };
  // No authentication here: Apollo builds the context before parsing, and the token is only
  // looked up once the operation is known to be within its limits (see limitsPlugin).
  const httpContext = async (req: http.IncomingMessage & { requestId?: string }, ip: string | undefined): Promise<Context> => {
    const requestId = req.requestId ?? newId();
    const actFor = req.headers[ACT_FOR_HEADER];
    const ctx: HttpContext = {
      requestId,
      ip,
      userAgent: req.headers["user-agent"],
      services,
      logger: logger.child({ requestId }),
      limits: config.limits,
      [requestToken]: bearerToken(req.headers.authorization),
      [requestActFor]: (typeof actFor === "string" ? actFor : actFor?.[0])?.trim() || undefined,
    };
    return ctx;
  };
  // Refusals of a body, in GraphQL's error shape (the same from both paths).
  const answers = {
    tooLarge: {
      errors: [{ message: `Request body exceeds the limit of ${config.http.maxBodyBytes} bytes`, extensions: { code: ErrorCode.BAD_USER_INPUT, limit: "BODY_SIZE", maxBodyBytes: config.http.maxBodyBytes } }],
    },
    notJson: { errors: [{ message: "Request body is not valid JSON", extensions: { code: ErrorCode.BAD_USER_INPUT } }] },
    internal: { errors: [{ message: "Internal server error", extensions: { code: ErrorCode.INTERNAL } }] },
  };
  lean.graphqlPost = graphqlPostHandler({
    apollo,
    maxBodyBytes: config.http.maxBodyBytes,
    answers,
    precheck: (body) => tooManyTokens((body as { query?: unknown }).query),
    context: (req) => httpContext(req, clientAddress(req, trustProxy)),
    onError: (err, req) => logger.error({ err, requestId: (req as { requestId?: string }).requestId }, "unhandled http error"),
  });
  app.use(
    "/graphql",
    express.json({ limit: config.http.maxBodyBytes }),
    (req: Request, res: Response, next: NextFunction) => {
      const refused = tooManyTokens(req.method === "GET" ? req.query.query : (req.body as { query?: unknown } | undefined)?.query);
      if (refused) {
        res.status(refused.status).json(refused.body);
        return;
      }
      next();
    },
    expressMiddleware(apollo, { context: async ({ req }) => httpContext(req, req.ip) }),
  );

  // Body parser failures (too large, malformed JSON) answered in GraphQL's error shape.
  app.use((err: { type?: string; status?: number; limit?: number } & Error, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    if (err.type === "entity.too.large") {
      res.status(413).json(answers.tooLarge);
      return;
    }
    if (err.type === "entity.parse.failed") {
      res.status(400).json(answers.notJson);
      return;
    }
    logger.error({ err, requestId: req.requestId }, "unhandled http error");
    res.status(err.status && err.status >= 400 && err.status < 500 ? err.status : 500).json(answers.internal);
  });

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(config.http.port, config.http.host, () => {
      httpServer.off("error", reject);
      resolve();
    });
  });
  const address = httpServer.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = config.http.publicUrl ?? `http://${host}:${address.port}`;

  let stopping: Promise<void> | undefined;
  return {
    httpServer,
    schema,
    url,
    graphqlUrl: `${url}/graphql`,
    wsUrl: `${url.replace(/^http/, "ws")}/graphql`,
    sockets,
    wsDocuments: documents,
    wsUsers: userConnections,
    wsFanout: fanout,
    stop() {
      stopping ??= (async () => {
        clearInterval(routineSummary);
        await revocations.return?.();
        await apollo.stop();
        summarizeRoutine();
      })();
      return stopping;
    },
  };
}

/**
 * The UTF-8 bytes of `text` in a Buffer of their own: `Buffer.from` takes small ones from Buffer's
 * shared pool, and a shared execution's latest payload, kept until its next result, would keep the
 * whole pool slab (64 KB) alive.
 */
function ownBuffer(text: string): Buffer {
  const buffer = Buffer.allocUnsafeSlow(Buffer.byteLength(text));
  buffer.write(text, 0);
  return buffer;
}

/** ws sends a Buffer as a binary message unless told otherwise; graphql-ws messages are text. */
const TEXT_FRAME = { binary: false } as const;

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
