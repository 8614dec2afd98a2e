import path from "node:path";
import { describe, expect, it } from "vitest";

const root = path.resolve(__dirname, "../..");

interface Measure {
  files: number;
  modules: number;
  moduleEdges: number;
  backEdges: string[];
  cycles: string[][];
  unknownFloor: string[];
  largest: { file: string; lines: number }[];
}

describe("the house: floors, measured from the imports", () => {
  it("has no import cycle, no import pointing up a floor, and every file on a floor", async () => {
    const { measure } = (await import(path.join(root, "scripts/layers.mjs"))) as { measure: () => Measure };
    const m = measure();
    expect(m.files).toBeGreaterThan(100);
    expect(m.cycles).toEqual([]);
    expect(m.backEdges).toEqual([]);
    expect(m.unknownFloor).toEqual([]);
  });
});
