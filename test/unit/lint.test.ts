import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ESLint } from "eslint";

const root = path.resolve(__dirname, "../..");

describe("workflow determinism guard (eslint; the layer boundaries are in test/unit/boundaries.test.ts)", () => {
  const eslint = new ESLint({ cwd: root });

  it("rejects Node built-ins, I/O packages and any import from src/ (types included) in workflows/", async () => {
    const code = [
      'import fs from "node:fs";',
      'import { S3Client } from "@aws-sdk/client-s3";',
      'import { activitiesFor } from "../../src/worker-activities";',
      'import type { RecoveryService } from "../../src/recoveries/recovery.service";',
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

  it("the whole tree passes lint", async () => {
    // ESLint's cache: a file is linted again when its content or the config that applies to it
    // changed. Every rule here reads the file alone (typescript-eslint's recommended set, import
    // paths matched against patterns; nothing type-aware or resolving other files), so a cached
    // answer is the answer. The cache is per package-lock.json, so new plugin versions start afresh.
    const lock = createHash("sha256").update(fs.readFileSync(path.join(root, "package-lock.json"))).digest("hex").slice(0, 16);
    const cached = new ESLint({ cwd: root, cache: true, cacheStrategy: "content", cacheLocation: path.join(root, ".data", "test", `eslintcache-${lock}`) });
    const results = await cached.lintFiles(["src", "workflows", "test", "scripts"]);
    const problems = results.flatMap((r) => r.messages.map((m) => `${path.relative(root, r.filePath)}:${m.line} ${m.ruleId} ${m.message}`));
    expect(problems).toEqual([]);
  });
});
