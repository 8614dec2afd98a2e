import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { generate } from "@graphql-codegen/cli";
import { printAppSchema } from "../../src/graphql/schema";
import codegenConfig from "../../codegen";

const root = path.resolve(__dirname, "../..");

describe("generated artefacts are committed and current", () => {
  it("schema.graphql matches the schema built from the code (run `npm run schema:emit`)", async () => {
    const committed = fs.readFileSync(path.join(root, "schema.graphql"), "utf8");
    expect(committed).toBe(await printAppSchema());
  });

  it("the typed documents match schema.graphql and the operations (run `npm run codegen`)", async () => {
    const outputs = (await generate({ ...codegenConfig, cwd: root, silent: true }, false)) as { filename: string; content: string }[];
    // Every output is compared: the CLI's and tests' documents and the web console's.
    const files = outputs.map((out) => path.relative(root, path.resolve(root, out.filename))).sort();
    expect(files).toEqual(Object.keys(codegenConfig.generates).sort());
    expect(files).toEqual(expect.arrayContaining(["src/client/generated/graphql.ts", "src/console/client/generated/graphql.ts"]));
    for (const out of outputs) {
      const committed = fs.readFileSync(path.resolve(root, out.filename), "utf8");
      expect(committed.trim(), out.filename).toBe(out.content.trim());
    }
  });
});
