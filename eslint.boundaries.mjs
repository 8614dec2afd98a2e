// The house's floors as lint rules (README "Layout" draws them). Imports point down or sideways,
// never up; scripts/layers.mjs measures the same floors and test/unit/layers.test.ts holds the
// whole tree to "no back edge, no cycle". One `no-restricted-imports` entry per file group: ESLint
// replaces (does not merge) a rule's options when several config objects match a file, so each
// group below lists everything it may not import.

const FEATURES = "auth|users|sessions|quotas|backups|uploads|recoveries|instances|verification|drills|workflow-runs|access|alerts|support|sources|agent-keys";
const ADAPTERS = "db|storage|compute|events|temporal|evidence|mail";
const TRANSPORT = "graphql|server|console|graphiql";
const ENTRY_FILES = "main|api|worker|runtime|worker-activities";

/** A relative import of a folder named by `names` (or a file of that name up the tree), from anywhere in the tree. */
const folder = (names) => `^(\\.\\./)+(.*/)?(${names})(/|$)|^\\./(.*/)?(${names})/`;

const rule = (message, regex, extra = {}) => ({ regex, message, ...extra });

const S3_SDK = {
  group: ["@aws-sdk/client-s3", "@aws-sdk/lib-storage", "@aws-sdk/s3-request-presigner"],
  message: "Only src/storage/ talks to S3: take a store (ChunkStore, ImageStore, ArtifactStore from src/storage/) through your dependencies instead.",
};

const upToTransport = rule(
  "Domain code must not depend on the transport: return plain data or publish an event (src/events); src/graphql and src/server adapt it.",
  folder(TRANSPORT),
);
const upToGraphqlFiles = rule(
  "Services take and return plain data, not the GraphQL classes in *.type.ts / *.input.ts / *.resolver.ts.",
  "\\.(resolver|type|input)(\\.js)?$",
);
const upToEntry = rule("Only the composition floor (main, runtime, worker, services.ts) wires the process together.", `^(\\.\\.?/)+(.*/)?(${ENTRY_FILES})(\\.js)?$`);
const toWorkflowCode = rule(
  "Start workflows through the typed workflow port (src/temporal); outside src/temporal import only types from workflows/contracts.",
  "^(\\.\\./)+workflows(/(?!contracts(\\.js)?$).*)?$",
);
const upToFeatures = rule("Ports and adapters serve every feature and know none: take what you need as an interface.", folder(FEATURES));
const upToAdapters = rule("The shared floor depends on nothing above it.", folder(ADAPTERS));
const upToFeaturesFromShared = rule("The shared floor depends on nothing above it.", folder(`${FEATURES}|${TRANSPORT}|${ENTRY_FILES}|services`));

const restrict = (patterns, paths = []) => ["error", { paths, patterns }];

/** The domain reaches Temporal only through the WorkflowPort the composition root passes in. */
const temporalPackages = [
  { name: "@temporalio/client", message: "Start, cancel or schedule workflows through the WorkflowPort (src/temporal/workflow-port.ts) passed in by the composition root." },
  { name: "@temporalio/worker", message: "The worker is built by the composition root (src/main.ts, src/worker-activities.ts)." },
];
const toTemporalAdapter = rule(
  "Domain code depends on the WorkflowPort (src/temporal/workflow-port.ts), not on the Temporal adapter.",
  "^(\\.\\./)+(.*/)?temporal(/(?!workflow-port(\\.js)?$)|$)",
);

const transportPackages = {
  regex: "^(type-graphql|graphql|graphql-ws|graphql-ws/.*|@apollo/.*|express|ws)$",
  message: "Events are transport-free: src/graphql adapts the EventBus to subscriptions.",
};

const dbTypesOnly = {
  regex: "^(\\.\\./)+db(/|$)",
  allowTypeImports: true,
  message: "src/events may use the database's types only (`import type`): events carry data, they do not query.",
};

export const boundaries = [
  {
    // Everything in src/ by default; the groups below replace these options with their own lists.
    files: ["src/**/*.ts"],
    ignores: ["src/storage/**"],
    rules: { "@typescript-eslint/no-restricted-imports": restrict([S3_SDK]) },
  },
  {
    // Domain: feature services, use cases and activities (their GraphQL files are transport).
    files: [`src/{${FEATURES.split("|").join(",")}}/**/*.ts`, "src/services.ts"],
    ignores: ["src/**/*.resolver.ts", "src/**/*.type.ts", "src/**/*.input.ts"],
    rules: { "@typescript-eslint/no-restricted-imports": restrict([upToTransport, upToGraphqlFiles, upToEntry, toWorkflowCode, toTemporalAdapter, S3_SDK], temporalPackages) },
  },
  {
    // Transport: GraphQL schema, resolvers, HTTP/WebSocket server, console and GraphiQL routes.
    files: [`src/{${TRANSPORT.split("|").join(",")}}/*.ts`, "src/server/**/*.ts", "src/graphql/**/*.ts", "src/**/*.resolver.ts", "src/**/*.type.ts", "src/**/*.input.ts"],
    ignores: ["src/console/client/**", "src/graphiql/client/**"],
    rules: { "@typescript-eslint/no-restricted-imports": restrict([upToEntry, toWorkflowCode, S3_SDK]) },
  },
  {
    files: ["src/{db,compute,evidence}/**/*.ts"],
    rules: { "@typescript-eslint/no-restricted-imports": restrict([upToFeatures, upToTransport, upToEntry, toWorkflowCode, S3_SDK]) },
  },
  {
    // Services publish through the EventBus port; only src/graphql and src/server consume events.
    files: ["src/events/**/*.ts"],
    rules: { "@typescript-eslint/no-restricted-imports": restrict([upToFeatures, upToTransport, upToEntry, toWorkflowCode, S3_SDK, transportPackages, dbTypesOnly]) },
  },
  {
    // The only floor that sends S3 commands.
    files: ["src/storage/**/*.ts"],
    rules: { "@typescript-eslint/no-restricted-imports": restrict([upToFeatures, upToTransport, upToEntry, toWorkflowCode]) },
  },
  {
    // The workflow engine adapter: may reference workflow functions (typed start), nothing above.
    files: ["src/temporal/**/*.ts"],
    rules: { "@typescript-eslint/no-restricted-imports": restrict([upToFeatures, upToTransport, upToEntry, S3_SDK]) },
  },
  {
    // (workflows/contracts.ts is shared too, held by the stricter workflow rule in eslint.config.mjs.)
    files: ["src/shared/**/*.ts", "src/config.ts", "src/logger.ts"],
    rules: { "@typescript-eslint/no-restricted-imports": restrict([upToFeaturesFromShared, upToAdapters, S3_SDK]) },
  },
  {
    // The `reclo` CLI runs on the customer's machine and speaks only GraphQL: it may import the
    // generated documents and the client (src/client/), the pure byte helpers (src/shared/bytes),
    // its own files, npm packages and Node built-ins. Anything else from src/ is server code (and
    // would load the server's dependencies, the S3 SDK among them, into the CLI).
    files: ["src/cli/**/*.ts"],
    rules: {
      "@typescript-eslint/no-restricted-imports": restrict([
        {
          // Any import path with a ".." segment (src/cli/ is flat, so it leaves the CLI), unless
          // it is "../client/…" (with no later "..") or "../shared/bytes".
          regex: String.raw`^(?!\.\./(?:client/(?!.*\.\.)|shared/bytes$)).*(?:^|/)\.\.(?:/|$)`,
          message:
            "The CLI imports only src/client/ (generated documents and the GraphQL client), src/shared/bytes and its own files: it talks to the server over GraphQL, never through server code.",
        },
        { group: ["@aws-sdk/*"], message: "The CLI talks to S3 only through the presigned URLs the API hands out; it does not load the AWS SDK." },
      ]),
    },
  },
];
