import path from "node:path";
import { describe, expect, it } from "vitest";
import { ESLint } from "eslint";

const root = path.resolve(__dirname, "..");

describe("workflow determinism guard and layer boundaries (eslint)", () => {
  const eslint = new ESLint({ cwd: root });

  it("rejects Node built-ins, I/O packages and any import from src/ (types included) in workflows/", async () => {
    const code = [
      'import fs from "node:fs";',
      'import { S3Client } from "@aws-sdk/client-s3";',
      'import { activitiesFor } from "../src/worker-activities";',
      'import type { RecoveryService } from "../src/recoveries/recovery.service";',
      "export const x = [fs, S3Client, activitiesFor, fetch];",
      "export type Y = RecoveryService;",
    ].join("\n");
    const [result] = await eslint.lintText(code, { filePath: path.join(root, "workflows/bad-example.ts") });
    const rules = result!.messages.map((m) => m.ruleId);
    expect(rules.filter((r) => r === "@typescript-eslint/no-restricted-imports")).toHaveLength(4);
    expect(rules).toContain("no-restricted-globals");
  });

  it("allows activity interfaces from ./contracts in workflows and leaves src/ free to do I/O", async () => {
    const ok =
      'import type { RecoveryActivities } from "./contracts";\nimport { proxyActivities } from "@temporalio/workflow";\nexport const a = proxyActivities<RecoveryActivities>({ startToCloseTimeout: "1 minute" });\n';
    const [wf] = await eslint.lintText(ok, { filePath: path.join(root, "workflows/good-example.ts") });
    expect(wf!.messages).toEqual([]);
    const [src] = await eslint.lintText('import fs from "node:fs";\nexport const x = fs;\n', { filePath: path.join(root, "src/io-example.ts") });
    expect(src!.messages).toEqual([]);
  });

  it("keeps the domain off workflow modules and the Temporal client, and src/temporal/ off the features", async () => {
    const domain = [
      'import { Client } from "@temporalio/client";',
      'import { recoveryWorkflow } from "../../workflows/recovery";',
      'import { temporalWorkflows } from "../temporal/workflows";',
      'import { drillWorkflow } from "../../workflows";',
      'import type { RecoveryWorkflowInput } from "../../workflows/contracts";',
      'import type { WorkflowPort } from "../temporal/workflow-port";',
      "export const x = [Client, recoveryWorkflow, temporalWorkflows, drillWorkflow];",
      "export type Y = [RecoveryWorkflowInput, WorkflowPort];",
    ].join("\n");
    const [d] = await eslint.lintText(domain, { filePath: path.join(root, "src/recoveries/bad-example.ts") });
    expect(d!.messages.map((m) => `${m.line} ${m.ruleId}`)).toEqual(["1 no-restricted-imports", "2 no-restricted-imports", "3 no-restricted-imports", "4 no-restricted-imports"]);

    const adapter =
      'import { RecoveryService } from "../recoveries/recovery.service";\nimport { activitiesFor } from "../worker-activities";\nimport type { DrillInput } from "../../workflows/contracts";\nexport const x = [RecoveryService, activitiesFor];\nexport type Y = DrillInput;\n';
    const [t] = await eslint.lintText(adapter, { filePath: path.join(root, "src/temporal/bad-example.ts") });
    expect(t!.messages.map((m) => `${m.line} ${m.ruleId}`)).toEqual(["1 no-restricted-imports", "2 no-restricted-imports"]);
  });

  it("the whole tree passes lint", async () => {
    const results = await eslint.lintFiles(["src", "workflows", "test", "scripts"]);
    const problems = results.flatMap((r) => r.messages.map((m) => `${path.relative(root, r.filePath)}:${m.line} ${m.ruleId} ${m.message}`));
    expect(problems).toEqual([]);
  });
});
