import { createRequire } from "node:module";
import path from "node:path";
import swc from "unplugin-swc";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

const require = createRequire(import.meta.url);

// V8's compiled code of every module Node loads itself, kept on disk and shared by every process of
// the run: node_modules in each test file's fresh worker, and the compiled product, worker and CLI
// processes the tests spawn (they inherit the environment). Loading the API's modules took
// 0.87–0.93 s of CPU with it warm against 1.09–1.35 s without.
process.env.NODE_COMPILE_CACHE ??= path.join(path.dirname(new URL(import.meta.url).pathname), ".data/test/node-compile-cache");

/**
 * Longest first, across the projects: three workers, and a few e2e files and the fault suite are
 * most of the run. Vitest's own order runs the projects one after another by name (e2e, faults,
 * integration, unit) and, without a previous run, larger files first: the fault suite started when
 * most of e2e was done and ran on alone at the end. A file's duration from the last run (vitest's
 * cache, node_modules/.vite) when there is one; else the seconds below: the mean of two warm runs
 * with three workers (session 15, 14:11 and 14:21), a file's set-up before its first test included
 * where it is long (local-access boots two machines, console backs up and verifies a disk), or what
 * its project's files usually take.
 */
const MEASURED_SECONDS: Record<string, number> = {
  "test/faults/faults.test.ts": 116,
  "test/e2e/cli-recovery.test.ts": 88,
  "test/e2e/verification.test.ts": 57,
  "test/e2e/drills.test.ts": 43,
  // Waits for the next whole minute (a schedule slot), 4–64 s.
  "test/e2e/agent.test.ts": 42,
  "test/e2e/console.test.ts": 38,
  "test/e2e/guest-isolation.test.ts": 37,
  "test/integration/encryption-alarm.test.ts": 35,
  "test/e2e/local-access.test.ts": 32,
  "test/e2e/local-recovery.test.ts": 29,
  "test/integration/recovery-workflow.test.ts": 29,
  "test/e2e/recovery-boot-check.test.ts": 22,
  "test/e2e/local-target.test.ts": 22,
  "test/integration/object-lock.test.ts": 22,
  "test/integration/workflows.test.ts": 19,
  "test/e2e/recovery-faults.test.ts": 17,
  "test/e2e/private-access.test.ts": 15,
  "test/e2e/cli-outages.test.ts": 15,
  // tsc of the whole project from a cold start (a fresh clone has no incremental state).
  "test/unit/typecheck.test.ts": 14,
  "test/integration/maintenance.test.ts": 10,
  "test/integration/trash-sources.test.ts": 10,
  "test/integration/notifications.test.ts": 10,
  "test/integration/trash.test.ts": 9,
  "test/integration/auth.test.ts": 9,
  "test/e2e/cli.test.ts": 8,
  "test/e2e/cli-trash.test.ts": 8,
  "test/e2e/accounts.test.ts": 7,
  "test/unit/lint.test.ts": 5,
};
const TYPICAL_SECONDS: Record<string, number> = { faults: 140, e2e: 20, integration: 8, unit: 2 };
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const byVitest = await super.sort(files);
    const rank = new Map(byVitest.map((f, i) => [f, i]));
    const cache = this.ctx.cache;
    const root = this.ctx.config.root;
    const expected = (f: TestSpecification) =>
      cache.getTestSpecificationResult(f)?.duration ?? (MEASURED_SECONDS[path.relative(root, f.moduleId)] ?? TYPICAL_SECONDS[f.project.name] ?? 10) * 1000;
    return [...files].sort((a, b) => expected(b) - expected(a) || rank.get(a)! - rank.get(b)!);
  }
}

export default defineConfig({
  resolve: {
    // One graphql realm: Vite would hand our sources graphql's ESM build (index.mjs) while the
    // externalised packages (type-graphql, Apollo, graphql-ws) load the CommonJS one through Node.
    alias: [{ find: /^graphql$/, replacement: require.resolve("graphql") }],
  },
  plugins: [
    // drizzle-orm as the product runs it: its CommonJS build. Externalised, Vitest would import its
    // ESM build natively, and Node reads the package scope of every one of its ~100 `.js` files to
    // learn their format, parsing its 179 KB package.json (the `exports` map) each time: ~0.6 s of
    // CPU in every test file's fresh worker (a worker profile: 563 ms of 3.2 s busy; the three
    // entry points alone: 690–860 ms as ESM, 120–160 ms as CommonJS). The compiled product and
    // the spawned processes are CommonJS and load this build already.
    {
      name: "reclo:drizzle-commonjs",
      enforce: "pre",
      resolveId(id: string) {
        return /^drizzle-orm(\/[\w/-]+)?$/.test(id) ? require.resolve(id) : null;
      },
    },
    swc.vite({
      jsc: {
        parser: { syntax: "typescript", decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true },
        target: "es2022",
      },
    }),
  ],
  test: {
    setupFiles: ["reflect-metadata"],
    unstubEnvs: true,
    unstubGlobals: true,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Test files share one database and one Temporal server; each file uses its own users, so files
    // may run in parallel. Three at once on two cores: the files wait a lot (QEMU guests, evidence
    // graces, rate-limited imports, the agent's next whole minute), and with two the cores were
    // idle 36-45 % of the run. Session 15, one machine, back to back (README "Suite time"): two
    // workers 491 s of vitest (56 % CPU busy), three 374 s (70 %), four 346 s (90 %, the long files
    // 20-45 % slower than with three: too close to the timing margins of the QEMU tests). Session 9's
    // machine had shown no reliable gain for three (499/588 s against 576/589 s).
    maxWorkers: 3,
    pool: "forks",
    sequence: { sequencer: LongestFirst },
    // Three tiers (README "Tests"): `npx vitest run --project unit` needs no service and takes
    // seconds; integration talks to MariaDB, the object store and Temporal; e2e runs processes,
    // QEMU guests and a browser. The services' global setup runs once for both of those.
    // The unit and integration files share one module registry per worker (`isolate: false`): they
    // run in-process stacks that each file builds and stops itself, and keep no state in shared
    // modules (env stubs are undone after each test: `unstubEnvs`). A fresh registry per file was
    // most of the 2-4 s between two such files: the gaps between files took 201-210 s of the three
    // workers' time with every file isolated, 152-156 s without (session 15). e2e and the fault
    // suite stay isolated: they spawn products, browsers and QEMU from their own processes.
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"], isolate: false } },
      { extends: true, test: { name: "integration", include: ["test/integration/**/*.test.ts"], globalSetup: ["test/global-setup.ts"], isolate: false } },
      // e2e waits on processes, a browser and the server's argon2 work, which take seconds more on a
      // loaded machine: conditions are polled for up to 30 s (vitest's default is 1 s) and a test
      // that spawns several CLI processes gets 3 minutes. Waits end as soon as the condition holds.
      {
        extends: true,
        test: { name: "e2e", include: ["test/e2e/**/*.test.ts"], globalSetup: ["test/global-setup.ts"], testTimeout: 180_000, expect: { poll: { timeout: 30_000 } } },
      },
      // Kills, dependency outages and cancels during recoveries, on a private MariaDB, versitygw,
      // Temporal and Redis the suite starts and stops itself (test/faults/stack); the global setup
      // is only for the workflow bundle. Writes .data/test/faults-report.md.
      { extends: true, test: { name: "faults", include: ["test/faults/**/*.test.ts"], globalSetup: ["test/global-setup.ts"] } },
    ],
  },
});
