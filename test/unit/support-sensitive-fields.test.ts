import { readFileSync } from "node:fs";
import path from "node:path";
import { buildSchema, isObjectType } from "graphql";
import { describe, expect, it } from "vitest";
import { ALLOWED_LOOKALIKES, SENSITIVE_FIELDS } from "../../src/graphql/support-acting";

/** Names that may hold a secret, a key, a configuration or a presigned URL. */
const LOOKS_SENSITIVE = /url|token|secret|key|config|password|svg|hash|private|output|screen|credential|sealed|signature/i;

describe("fields support may not read while acting for a customer", () => {
  const schema = buildSchema(readFileSync(path.join(__dirname, "../../schema.graphql"), "utf8"));
  const coordinates = Object.values(schema.getTypeMap())
    .filter((t) => isObjectType(t) && !t.name.startsWith("__"))
    .flatMap((t) => Object.values((t as import("graphql").GraphQLObjectType).getFields()).map((f) => `${t.name}.${f.name}`));

  it("every field whose name looks like a secret is classified: sensitive (refused) or allowed (with a reason)", () => {
    const suspicious = coordinates.filter((c) => LOOKS_SENSITIVE.test(c.split(".")[1]!));
    expect(suspicious.length).toBeGreaterThan(10);
    const unclassified = suspicious.filter((c) => !SENSITIVE_FIELDS.has(c) && !ALLOWED_LOOKALIKES.has(c));
    expect(unclassified, "classify these in src/graphql/support-acting.ts").toEqual([]);
  });

  it("both lists name fields that exist (a renamed field cannot leave a stale entry behind)", () => {
    const known = new Set(coordinates);
    expect([...SENSITIVE_FIELDS.keys(), ...ALLOWED_LOOKALIKES.keys()].filter((c) => !known.has(c))).toEqual([]);
    expect([...SENSITIVE_FIELDS.keys()].filter((c) => ALLOWED_LOOKALIKES.has(c))).toEqual([]);
  });
});
