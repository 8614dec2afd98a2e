/**
 * Monaco (used by GraphiQL 5) runs its language services in web workers. The workers are built
 * as separate esbuild entry points by scripts/build-graphiql.mjs; their (content-hashed) file
 * names are injected at build time through `__RECLO_GRAPHIQL_WORKERS__`.
 *
 * This module must be evaluated BEFORE anything imports monaco-editor/graphiql, so app.tsx
 * imports it first.
 */

declare const __RECLO_GRAPHIQL_WORKERS__: { editor: string; json: string; graphql: string };

type MonacoEnvironment = { getWorker(workerId: string, label: string): Worker };

const workers = __RECLO_GRAPHIQL_WORKERS__;

// Workers live next to the bundle that contains this code (dist/graphiql/assets/), so resolve
// them relative to this module rather than hard-coding the mount path.
function workerUrl(file: string): string {
  return new URL(file, import.meta.url).href;
}

(globalThis as unknown as { MonacoEnvironment: MonacoEnvironment }).MonacoEnvironment = {
  getWorker(_workerId: string, label: string): Worker {
    switch (label) {
      case "json":
        return new Worker(workerUrl(workers.json), { name: "json" });
      case "graphql":
        return new Worker(workerUrl(workers.graphql), { name: "graphql" });
      default:
        return new Worker(workerUrl(workers.editor), { name: label || "editor" });
    }
  },
};

export {};
