import { describe, expect, it } from "vitest";
import { UploadPrinter, uploadLine, type UploadUpdate } from "../../src/cli/upload-watch";

const MiB = 1024 * 1024;
const base: UploadUpdate = {
  id: "u1",
  status: "ACTIVE",
  sourceName: "office",
  bytesSent: 10 * MiB,
  chunksSent: 1,
  chunksTotal: 4,
  bytesTotal: 40 * MiB,
  bytesDone: 10 * MiB,
  rate: 2 * MiB,
  etaSeconds: 15,
  failureReason: null,
  startedAt: "2026-11-30T10:00:00.000Z",
  lastActivityAt: null,
  completedAt: null,
};
const failed: UploadUpdate = { ...base, status: "FAILED", rate: 0, etaSeconds: null, failureReason: "IMAGE_NOT_READABLE: EIO" };

function sink() {
  const chunks: string[] = [];
  return { chunks, write: (s: string) => void chunks.push(s), text: () => chunks.join("") };
}

describe("reclo backups --watch output", () => {
  it("says progress, rate and time left while active; the reason once failed", () => {
    expect(uploadLine(base)).toBe("office  ACTIVE     25%  10.0 MiB of 40.0 MiB  2.00 MiB/s  ETA 0:15  sent 10.0 MiB (1 chunk)");
    expect(uploadLine({ ...base, status: "COMPLETED", bytesDone: 40 * MiB, chunksSent: 4, bytesSent: 40 * MiB })).toBe("office  COMPLETED 100%  40.0 MiB  sent 40.0 MiB (4 chunks)");
    expect(uploadLine(failed)).toBe("office  FAILED     25%  sent 10.0 MiB (1 chunk): IMAGE_NOT_READABLE: EIO");
  });

  it("not on a terminal: one line per update", () => {
    const out = sink();
    const p = new UploadPrinter(out, "lines");
    p.update(base);
    p.update({ ...base, bytesDone: 20 * MiB });
    p.update(failed);
    p.close();
    expect(out.text().split("\n")).toEqual([uploadLine(base), uploadLine({ ...base, bytesDone: 20 * MiB }), uploadLine(failed), ""]);
  });

  it("on a terminal: one line redrawn in place, its end left on screen", () => {
    const out = sink();
    const p = new UploadPrinter(out, "tty");
    p.update(base);
    p.update({ ...base, bytesDone: 20 * MiB });
    expect(out.text()).not.toContain("\n");
    expect(out.chunks.every((c) => c.startsWith("\r\x1b[2K"))).toBe(true);
    p.update(failed);
    expect(out.text().endsWith(`${uploadLine(failed)}\n`)).toBe(true);
    p.close();
    expect(out.text().split("\n")).toHaveLength(2);
    // Detached while active: the line is ended.
    const out2 = sink();
    const p2 = new UploadPrinter(out2, "tty");
    p2.update(base);
    p2.close();
    expect(out2.text().endsWith("\n")).toBe(true);
  });

  it("--json: the upload as a JSON line", () => {
    const out = sink();
    new UploadPrinter(out, "json").update(failed);
    expect(JSON.parse(out.text())).toEqual(failed);
  });
});
