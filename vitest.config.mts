import { createRequire } from "node:module";
import swc from "unplugin-swc";
import { defineConfig } from "vitest/config";

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // One graphql realm: Vite would hand our sources graphql's ESM build (index.mjs) while the
    // externalised packages (type-graphql, Apollo, graphql-ws) load the CommonJS one through Node.
    alias: [{ find: /^graphql$/, replacement: require.resolve("graphql") }],
  },
  plugins: [
    swc.vite({
      jsc: {
        parser: { syntax: "typescript", decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true },
        target: "es2022",
      },
    }),
  ],
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    setupFiles: ["reflect-metadata"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Test files share one database and one Temporal server; each file uses its own users,
    // so files may run in parallel, but two cores are all we have.
    maxWorkers: 2,
    pool: "forks",
  },
});
