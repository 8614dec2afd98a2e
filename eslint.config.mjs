import tseslint from "typescript-eslint";
import { builtinModules } from "node:module";

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

// Feature folders and the transport: what the shared floors (src/compute, src/evidence) never import.
const FEATURES = ["auth", "users", "sessions", "quotas", "backups", "uploads", "recoveries", "instances", "verification", "drills"];
const ABOVE_SHARED_FLOORS = [...FEATURES, "graphql", "server", "console", "graphiql", "cli"].flatMap((d) => [`**/${d}`, `**/${d}/**`]);

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "src/client/generated/**", "src/graphiql/client/**", ".data/**", "drizzle/**"] },
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-require-imports": "off",
    },
  },
  {
    // Compute (the ComputeTarget port and its adapters) and boot evidence serve every feature and
    // know none of them; the object store is reached only through src/storage (a port such as
    // ImageSource is handed in).
    files: ["src/compute/**/*.ts", "src/evidence/**/*.ts"],
    rules: {
      "@typescript-eslint/no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: [...ABOVE_SHARED_FLOORS, "**/workflows/**"], message: "src/compute and src/evidence are shared floors: they import no feature, no transport and no workflow." },
            { group: ["@aws-sdk/client-s3", "@aws-sdk/lib-storage", "@aws-sdk/s3-request-presigner"], message: "Only src/storage talks to the object store: take a port (e.g. ImageSource) instead." },
          ],
        },
      ],
    },
  },
  {
    // Temporal workflow code must be deterministic: no Node built-ins, no I/O libraries, no
    // clocks or randomness from outside the workflow sandbox. Activities live in src/.
    files: ["workflows/**/*.ts"],
    rules: {
      "@typescript-eslint/no-restricted-imports": [
        "error",
        {
          paths: nodeBuiltins.map((name) => ({ name, message: "Workflows must not use Node built-ins; do I/O in an activity (src/)." })),
          patterns: [
            {
              group: ["**/src/**", "**/src"],
              allowTypeImports: true,
              message: "Workflows may import only types from src/ (`import type`): activities run in the worker, not in the workflow sandbox.",
            },
            {
              group: ["@aws-sdk/*", "mysql2", "mysql2/*", "drizzle-orm", "drizzle-orm/*", "ioredis", "pino", "argon2", "ws", "graphql-ws", "express", "@temporalio/client", "@temporalio/worker", "@temporalio/activity"],
              message: "Workflows must not do I/O; call an activity instead.",
            },
          ],
        },
      ],
      "no-restricted-globals": [
        "error",
        { name: "fetch", message: "No I/O in workflows: use an activity." },
        { name: "process", message: "No process access in workflows." },
        { name: "setInterval", message: "Use workflow sleep/condition." },
        { name: "require", message: "No dynamic requires in workflows." },
      ],
      "@typescript-eslint/consistent-type-imports": ["error", { prefer: "type-imports" }],
    },
  },
  {
    // src/events (topics, the EventBus port and its adapters) sits below the features and the
    // transport: services publish through it and the GraphQL layer subscribes, never the reverse.
    files: ["src/events/**/*.ts"],
    rules: {
      "@typescript-eslint/no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: "^\\.\\./(?!(db|shared)(/|$)|config$|logger$)",
              message: "src/events must not import a feature, the transport (src/graphql, src/server) or workflows: it is a floor below them.",
            },
            {
              regex: "^\\.\\./db(/|$)",
              allowTypeImports: true,
              message: "src/events may use the database's types only (`import type`): events carry data, they do not query.",
            },
            {
              regex: "^(type-graphql|graphql|graphql-ws|@apollo/.*|express|ws)$",
              message: "src/events is transport-free: adapt the EventBus to GraphQL in src/graphql.",
            },
          ],
        },
      ],
    },
  },
);
