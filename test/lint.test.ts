import path from "node:path";
import { describe, expect, it } from "vitest";
import { ESLint } from "eslint";

const root = path.resolve(__dirname, "..");

describe("workflow determinism guard (eslint)", () => {
  const eslint = new ESLint({ cwd: root });

  it("rejects Node built-ins, I/O packages and value imports from src/ in workflows/", async () => {
    const code = [
      'import fs from "node:fs";',
      'import { S3Client } from "@aws-sdk/client-s3";',
      'import { createActivities } from "../src/temporal/activities";',
      "export const x = [fs, S3Client, createActivities, fetch];",
    ].join("\n");
    const [result] = await eslint.lintText(code, { filePath: path.join(root, "workflows/bad-example.ts") });
    const rules = result!.messages.map((m) => m.ruleId);
    expect(rules.filter((r) => r === "@typescript-eslint/no-restricted-imports")).toHaveLength(3);
    expect(rules).toContain("no-restricted-globals");
  });

  it("allows activity type imports in workflows and leaves src/ free to do I/O", async () => {
    const ok = 'import type { Activities } from "../src/temporal/activities";\nimport { proxyActivities } from "@temporalio/workflow";\nexport const a = proxyActivities<Activities>({ startToCloseTimeout: "1 minute" });\n';
    const [wf] = await eslint.lintText(ok, { filePath: path.join(root, "workflows/good-example.ts") });
    expect(wf!.messages).toEqual([]);
    const [src] = await eslint.lintText('import fs from "node:fs";\nexport const x = fs;\n', { filePath: path.join(root, "src/io-example.ts") });
    expect(src!.messages).toEqual([]);
  });

  it("keeps src/compute and src/evidence free of features, transport, workflows and the S3 SDK", async () => {
    const code = [
      'import type { RecoveryService } from "../recoveries/recovery.service";',
      'import type { Verification } from "../verification/verification.type";',
      'import { Topic } from "../graphql/pubsub";',
      'import type { RecoveryInput } from "../../workflows/contracts";',
      'import { GetObjectCommand } from "@aws-sdk/client-s3";',
      "export type X = [RecoveryService, Verification, typeof Topic, RecoveryInput, typeof GetObjectCommand];",
    ].join("\n");
    for (const file of ["src/compute/bad-example.ts", "src/compute/local/bad-example.ts", "src/evidence/bad-example.ts"]) {
      const [result] = await eslint.lintText(code, { filePath: path.join(root, file) });
      expect(result!.messages.filter((m) => m.ruleId === "@typescript-eslint/no-restricted-imports")).toHaveLength(5);
    }
    const ok = 'import type { Config } from "../config";\nimport { TargetError } from "./target";\nexport type Y = [Config, TargetError];\n';
    const [fine] = await eslint.lintText(ok, { filePath: path.join(root, "src/compute/good-example.ts") });
    expect(fine!.messages).toEqual([]);
  });

  it("the whole tree passes lint", async () => {
    const results = await eslint.lintFiles(["src", "workflows", "test", "scripts"]);
    const problems = results.flatMap((r) => r.messages.map((m) => `${path.relative(root, r.filePath)}:${m.line} ${m.ruleId} ${m.message}`));
    expect(problems).toEqual([]);
  });
});

describe("events floor boundary (eslint)", () => {
  const eslint = new ESLint({ cwd: root });
  const lintEvents = async (code: string) => {
    const [result] = await eslint.lintText(code, { filePath: path.join(root, "src/events/boundary-example.ts") });
    return result!.messages.filter((m) => m.ruleId === "@typescript-eslint/no-restricted-imports").map((m) => m.message);
  };

  it("rejects imports of the transport, features, workflows and GraphQL packages, and value imports of src/db", async () => {
    const messages = await lintEvents(
      [
        'import type { Context } from "../graphql/context";',
        'import { SocketRegistry } from "../server/socket-registry";',
        'import type { BackupService } from "../backups/backup.service";',
        'import type { RecoveryWorkflowInput } from "../../workflows/recovery";',
        'import { PubSub } from "type-graphql";',
        'import { recoveries } from "../db/schema";',
        "export type X = [Context, SocketRegistry, BackupService, RecoveryWorkflowInput, PubSub, typeof recoveries];",
      ].join("\n"),
    );
    expect(messages).toHaveLength(6);
    expect(messages.filter((m) => m.includes("floor below them"))).toHaveLength(4);
    expect(messages.some((m) => m.includes("transport-free"))).toBe(true);
    expect(messages.some((m) => m.includes("database's types only"))).toBe(true);
  });

  it("allows its own modules, type imports of src/db, and the pub/sub packages", async () => {
    const messages = await lintEvents(
      [
        'import type { EventMap } from "./topics";',
        'import type { BootCheckRecord } from "../db/schema";',
        'import { createPubSub } from "@graphql-yoga/subscription";',
        'import { Redis } from "ioredis";',
        "export type X = [EventMap, BootCheckRecord, typeof createPubSub, Redis];",
      ].join("\n"),
    );
    expect(messages).toEqual([]);
  });
});
