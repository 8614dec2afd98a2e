import tseslint from "typescript-eslint";
import { builtinModules } from "node:module";

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
/** The domain floor: feature folders (and their shared use cases). */
const features = ["auth", "users", "sessions", "quotas", "backups", "uploads", "recoveries", "instances", "verification", "drills", "workflow-runs"];

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
              message: "Workflows import only @temporalio/workflow and types from ./contracts (inputs, outputs, activity interfaces); src/ runs in the worker, not in the workflow sandbox.",
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
    // The domain starts workflows through the workflow port (src/temporal/workflow-port.ts), typed by
    // workflows/contracts.ts: never a workflow module, the Temporal client or the adapter itself.
    files: [`src/{${features.join(",")}}/**/*.ts`],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: [
            { name: "@temporalio/client", message: "Start, cancel or schedule workflows through the WorkflowPort (src/temporal/workflow-port.ts) passed in by the composition root." },
            { name: "@temporalio/worker", message: "The worker is built by the composition root (src/main.ts, src/worker-activities.ts)." },
          ],
          patterns: [
            { regex: "^(\\.\\./)+workflows(/(?!contracts$)|$)", message: "Domain code imports only the types in workflows/contracts.ts, never a workflow module." },
            { regex: "(^|/)temporal(/(?!workflow-port$)|$)", message: "Domain code depends on the WorkflowPort (src/temporal/workflow-port.ts), not on the Temporal adapter." },
          ],
        },
      ],
    },
  },
  {
    // src/temporal/ is an adapter floor: it knows Temporal and the workflows, not the features that use them.
    files: ["src/temporal/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: `^\\.\\./(${[...features, "graphql", "server", "console", "graphiql"].join("|")})(/|$)`,
              message: "src/temporal/ must not import feature or transport folders; the composition root wires them (src/worker-activities.ts).",
            },
            { regex: "^\\.\\./(services|runtime|worker-activities|main|api|worker)$", message: "src/temporal/ must not import the composition root." },
          ],
        },
      ],
    },
  },
);
