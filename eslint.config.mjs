import tseslint from "typescript-eslint";
import { builtinModules } from "node:module";
import { boundaries } from "./eslint.boundaries.mjs";

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "src/client/generated/**", "src/console/client/generated/**", "src/graphiql/client/**", ".data/**", "drizzle/**"] },
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
  ...boundaries,
);
