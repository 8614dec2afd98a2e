import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ESLint } from "eslint";

const root = path.resolve(__dirname, "../..");
const eslint = new ESLint({ cwd: root, overrideConfigFile: path.join(root, "eslint.config.mjs") });
const RULE = "@typescript-eslint/no-restricted-imports";

/** Lints `code` as if it were the file at `file` (relative to the repository), returning its problems. */
async function lint(file: string, code: string): Promise<{ ruleId: string | null; message: string; line: number }[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(root, file) });
  return result!.messages.map((m) => ({ ruleId: m.ruleId, message: m.message, line: m.line }));
}

describe("layer boundaries (eslint)", () => {
  describe("src/cli imports only the client, the pure byte helpers and its own files", () => {
    it("refuses server code, however the path is spelled", async () => {
      const code = [
        'import { ChunkStore } from "../storage/chunk-store";',
        'import type { VerificationService } from "../verification/verification.service";',
        'import { loadConfig } from "../config";',
        'import { createS3Client } from "../client/../storage/s3";',
        'import { newId } from "./../common/ids";',
        "export const x = [ChunkStore, loadConfig, createS3Client, newId];",
        "export type V = VerificationService;",
      ].join("\n");
      const problems = await lint("src/cli/bad-example.ts", code);
      expect(problems.map((p) => p.line)).toEqual([1, 2, 3, 4, 5]);
      for (const p of problems) {
        expect(p.ruleId).toBe(RULE);
        expect(p.message).toContain("The CLI imports only src/client/ (generated documents and the GraphQL client), src/shared/bytes and its own files");
      }
    });

    it("refuses the AWS SDK", async () => {
      const code = 'import { S3Client } from "@aws-sdk/client-s3";\nimport { EC2Client } from "@aws-sdk/client-ec2";\nexport const x = [S3Client, EC2Client];\n';
      const problems = await lint("src/cli/bad-example.ts", code);
      expect(problems).toHaveLength(2);
      for (const p of problems) {
        expect(p.ruleId).toBe(RULE);
        expect(p.message).toContain("The CLI talks to S3 only through the presigned URLs the API hands out");
      }
    });

    it("allows the generated documents, the GraphQL client, src/shared/bytes, its own files, npm packages and Node built-ins", async () => {
      const code = [
        'import fs from "node:fs";',
        'import { print } from "graphql";',
        'import { ReCloClient } from "../client/graphql-client";',
        'import { MeDocument } from "../client/generated/graphql";',
        'import { verdictWords } from "../client/verdict-words";',
        'import { isZero, sha256Hex } from "../shared/bytes";',
        'import { connect } from "./common";',
        "export const x = [fs, print, ReCloClient, MeDocument, verdictWords, isZero, sha256Hex, connect];",
      ].join("\n");
      expect(await lint("src/cli/good-example.ts", code)).toEqual([]);
    });
  });

  describe("only src/storage talks to S3", () => {
    const code = [
      'import { PutObjectCommand } from "@aws-sdk/client-s3";',
      'import { getSignedUrl } from "@aws-sdk/s3-request-presigner";',
      'import { Upload } from "@aws-sdk/lib-storage";',
      "export const x = [PutObjectCommand, getSignedUrl, Upload];",
    ].join("\n");

    it("refuses the S3 SDK in features and in the composition root", async () => {
      for (const file of ["src/recoveries/bad-example.ts", "src/instances/bad-example.ts", "src/runtime-example.ts"]) {
        const problems = await lint(file, code);
        expect(problems.map((p) => p.ruleId)).toEqual([RULE, RULE, RULE]);
        for (const p of problems) expect(p.message).toContain("Only src/storage/ talks to S3: take a store");
      }
      // A type-only import counts too: features hold a store, not a client.
      const typeOnly = await lint("src/verification/bad-example.ts", 'import type { S3Client } from "@aws-sdk/client-s3";\nexport type C = S3Client;\n');
      expect(typeOnly.map((p) => p.ruleId)).toEqual([RULE]);
    });

    it("allows it in src/storage/, the tests and the benchmarks", async () => {
      for (const file of ["src/storage/some-store.ts", "test/some-example.test.ts", "bench/some-bench.ts"]) expect(await lint(file, code)).toEqual([]);
    });
  });

  describe("floors: domain, adapters, shared", () => {
    const ruleMessages = async (file: string, code: string) => (await lint(file, code)).filter((p) => p.ruleId === RULE).map((p) => p.message);

    it("keeps the domain off the transport, GraphQL classes, the composition root, workflow code, Temporal and the S3 SDK", async () => {
      const code = [
        'import { Topic } from "../graphql/context";',
        'import { BackupType } from "./backup.type";',
        'import { runtime } from "../runtime";',
        'import { recoveryWorkflow } from "../../workflows/recovery";',
        'import { drillWorkflow } from "../../workflows";',
        'import { Client } from "@temporalio/client";',
        'import { temporalWorkflows } from "../temporal/workflows";',
        'import { S3Client } from "@aws-sdk/client-s3";',
        "export const x = [Topic, BackupType, runtime, recoveryWorkflow, drillWorkflow, Client, temporalWorkflows, S3Client];",
      ].join("\n");
      const found = await lint("src/backups/example.service.ts", code);
      expect(found.map((p) => `${p.line} ${p.ruleId}`)).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((l) => `${l} ${RULE}`));
      expect(found[0]!.message).toMatch(/must not depend on the transport/);
    });

    it("lets the domain import workflow contracts, the workflow port, events, adapters and shared code", async () => {
      const code = [
        'import type { RecoveryWorkflowInput } from "../../workflows/contracts";',
        'import type { WorkflowPort } from "../temporal/workflow-port";',
        'import type { EventBus } from "../events/event-bus";',
        'import { findOwned } from "../db/ownership";',
        'import { AppError } from "../shared/errors";',
        "export const x = [findOwned, AppError];",
        "export type Y = [RecoveryWorkflowInput, WorkflowPort, EventBus];",
      ].join("\n");
      expect(await ruleMessages("src/recoveries/example.service.ts", code)).toEqual([]);
    });

    it("keeps compute and evidence free of features, transport, workflows and the S3 SDK", async () => {
      const code = [
        'import type { RecoveryService } from "../recoveries/recovery.service";',
        'import type { Verification } from "../verification/verification.type";',
        'import { schema } from "../graphql/schema";',
        'import type { RecoveryInput } from "../../workflows/recovery";',
        'import { GetObjectCommand } from "@aws-sdk/client-s3";',
        "export type X = [RecoveryService, Verification, typeof schema, RecoveryInput, typeof GetObjectCommand];",
      ].join("\n");
      for (const file of ["src/compute/bad-example.ts", "src/evidence/bad-example.ts"]) expect(await ruleMessages(file, code)).toHaveLength(5);
      expect(await ruleMessages("src/compute/local/bad-example.ts", code.replaceAll('"../', '"../../'))).toHaveLength(5);
      const ok = 'import type { Config } from "../config";\nimport { TargetError } from "./target";\nexport type Y = [Config, TargetError];\n';
      expect(await ruleMessages("src/compute/good-example.ts", ok)).toEqual([]);
    });

    it("keeps events transport-free and off the database except for its types", async () => {
      const code = [
        'import type { Context } from "../graphql/context";',
        'import type { BackupService } from "../backups/backup.service";',
        'import { PubSub } from "type-graphql";',
        'import { recoveries } from "../db/schema";',
        'import type { BootCheckRecord } from "../db/schema";',
        'import { createPubSub } from "@graphql-yoga/subscription";',
        "export type X = [Context, BackupService, PubSub, typeof recoveries, BootCheckRecord, typeof createPubSub];",
      ].join("\n");
      const found = await lint("src/events/example.ts", code);
      expect(found.map((p) => p.line)).toEqual([1, 2, 3, 4]);
    });

    it("lets only src/temporal reference workflow functions, and keeps it off the features and the composition root", async () => {
      const code = 'import { recoveryWorkflow } from "../../workflows/recovery";\nexport const x = recoveryWorkflow;\n';
      expect(await ruleMessages("src/temporal/example.ts", code)).toEqual([]);
      expect(await ruleMessages("src/server/example.ts", code)).toHaveLength(1);
      const adapter = 'import { RecoveryService } from "../recoveries/recovery.service";\nimport { activitiesFor } from "../worker-activities";\nexport const x = [RecoveryService, activitiesFor];\n';
      expect(await ruleMessages("src/temporal/example.ts", adapter)).toHaveLength(2);
    });

    it("keeps the shared floor off everything above it", async () => {
      const code = 'import { db } from "../db/client";\nimport { s } from "../services";\nimport { Topic } from "../events/topics";\nexport const x = [db, s, Topic];\n';
      expect(await ruleMessages("src/shared/example.ts", code)).toHaveLength(3);
    });
  });
});

describe("the CLI's module graph", () => {
  it("loads no AWS SDK module and no server code", () => {
    // What `reclo` loads from source (bin/reclo.js does the same through @swc-node/register).
    const script = [
      'require("./src/cli/main.ts");',
      "const loaded = Object.keys(require.cache).map((f) => path.relative(process.cwd(), f));",
      "process.stdout.write(JSON.stringify(loaded));",
    ].join("\n");
    const out = execFileSync(process.execPath, ["-r", "@swc-node/register", "-e", `const path = require("node:path");\n${script}`], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    const loaded = JSON.parse(out) as string[];
    expect(loaded).toContain(path.join("src", "cli", "main.ts"));
    expect(loaded.filter((f) => f.includes(`node_modules${path.sep}@aws-sdk${path.sep}`))).toEqual([]);
    const ours = loaded.filter((f) => f.startsWith(`src${path.sep}`));
    expect(ours.filter((f) => !/^src\/(cli\/|client\/|shared\/bytes\.ts$)/.test(f))).toEqual([]);
  });
});
