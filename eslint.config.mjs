import tseslint from "typescript-eslint";
import { builtinModules } from "node:module";

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

// Storage owns S3: only src/storage/ sends S3 commands, presigns or uploads. Features take a store
// (ChunkStore, ImageStore, ArtifactStore) through their dependencies; the composition root builds
// the client with src/storage/s3.ts. Tests, bench/ and scripts/ may still talk to S3 directly.
const s3Sdk = ["@aws-sdk/client-s3", "@aws-sdk/lib-storage", "@aws-sdk/s3-request-presigner"];
const s3Restriction = {
  paths: s3Sdk.map((name) => ({
    name,
    message: "Only src/storage/ talks to S3: take a store (ChunkStore, ImageStore, ArtifactStore from src/storage/) through your dependencies instead.",
  })),
};

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
    files: ["src/**/*.ts"],
    // src/recoveries/targets/ reads composed images with its own GetObject until it moves to
    // src/compute/ and reads them through src/storage/ (issue 12, item 2): drop it from here then.
    ignores: ["src/storage/**", "src/recoveries/targets/**"],
    rules: {
      "@typescript-eslint/no-restricted-imports": ["error", s3Restriction],
    },
  },
  {
    // The `reclo` CLI runs on the customer's machine and speaks only GraphQL: it may import the
    // generated documents and the client (src/client/), the pure byte helpers (src/shared/bytes),
    // its own files, npm packages and Node built-ins. Anything else from src/ is server code (and
    // would load the server's dependencies, the S3 SDK among them, into the CLI). These options
    // replace the S3 block's for src/cli/, so the SDK is refused here again (all of @aws-sdk).
    files: ["src/cli/**/*.ts"],
    rules: {
      "@typescript-eslint/no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              // Any import path with a ".." segment (src/cli/ is flat, so it leaves the CLI), unless
              // it is "../client/…" (with no later "..") or "../shared/bytes".
              regex: String.raw`^(?!\.\./(?:client/(?!.*\.\.)|shared/bytes$)).*(?:^|/)\.\.(?:/|$)`,
              message:
                "The CLI imports only src/client/ (generated documents and the GraphQL client), src/shared/bytes and its own files: it talks to the server over GraphQL, never through server code.",
            },
            {
              group: ["@aws-sdk/*"],
              message: "The CLI talks to S3 only through the presigned URLs the API hands out; it does not load the AWS SDK.",
            },
          ],
        },
      ],
    },
  },
);
