import { spawn } from "node:child_process";

/** tesseract is not installed (or not runnable): the screen cannot be read. */
export class OcrUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OcrUnavailableError";
  }
}

const MAX_OUTPUT = 64 * 1024;

/**
 * Reads the text of a screenshot (PNG or JPEG) with tesseract (Debian `tesseract-ocr` +
 * `tesseract-ocr-eng`), fed on stdin so no file is written. Bounded: killed after `timeoutMs` or when `signal` aborts.
 */
export function ocrImage(image: Buffer, opts: { tesseract?: string; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<string> {
  const bin = opts.tesseract ?? "tesseract";
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new Error("OCR aborted"));
    // OMP_THREAD_LIMIT=1: tesseract's own threads only slow it down on a busy host.
    const child = spawn(bin, ["stdin", "stdout", "-l", "eng", "--psm", "3"], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, OMP_THREAD_LIMIT: "1" } });
    let out = "";
    let err = "";
    let settled = false;
    const finish = (e: Error | null, text?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      if (e) reject(e);
      else resolve(text ?? "");
    };
    const onAbort = () => {
      child.kill("SIGKILL");
      finish(new Error("OCR aborted"));
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish(new Error(`tesseract took longer than ${opts.timeoutMs ?? 30_000} ms`));
    }, opts.timeoutMs ?? 30_000);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    child.stdout.on("data", (d: Buffer) => {
      if (out.length < MAX_OUTPUT) out += d.toString("utf8");
    });
    child.stderr.on("data", (d: Buffer) => (err = (err + d.toString("utf8")).slice(-2000)));
    child.stdin.on("error", () => {}); // tesseract may exit before reading everything; the exit code tells.
    child.on("error", (e: NodeJS.ErrnoException) =>
      finish(e.code === "ENOENT" ? new OcrUnavailableError(`tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng): ${bin} not found`) : e),
    );
    child.on("close", (code) => {
      if (code === 0) return finish(null, out);
      if (/Failed loading language|Error opening data file/i.test(err)) return finish(new OcrUnavailableError(`tesseract has no English data (apt-get install tesseract-ocr-eng): ${err.trim().split("\n")[0]}`));
      finish(new Error(`tesseract exited with ${code}: ${err.trim().slice(-300)}`));
    });
    child.stdin.end(image);
  });
}
