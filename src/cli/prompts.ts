import readline from "node:readline";
import type { CliIo } from "./command";
import { CliError } from "./errors";

/** Reading from the terminal or a pipe: a first line, a hidden password, an answer to a question. */

/** The first line of a non-terminal stdin (without the line break). */
export async function readFirstLine(input: NodeJS.ReadStream): Promise<string> {
  const rl = readline.createInterface({ input, crlfDelay: Infinity, terminal: false });
  try {
    for await (const line of rl) return line;
    return "";
  } finally {
    rl.close();
    input.pause();
    (input as NodeJS.ReadStream & { unref?: () => void }).unref?.();
  }
}

/** Reads a line from the terminal without echoing it. */
export async function promptHidden(io: CliIo, question: string): Promise<string> {
  const { stdin, stderr } = io;
  (stdin as NodeJS.ReadStream & { ref?: () => void }).ref?.(); // an earlier prompt unref'd it
  // Echo off before the question shows: what is typed after it is never echoed.
  stdin.setRawMode(true);
  stdin.setEncoding("utf8");
  stdin.resume();
  stderr.write(question);
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = "";
      const onData = (chunk: string) => {
        for (const ch of chunk) {
          if (ch === "\r" || ch === "\n" || ch === "\u0004") {
            stdin.off("data", onData);
            resolve(value);
            return;
          }
          if (ch === "\u0003") {
            stdin.off("data", onData);
            reject(new CliError("Cancelled", "CANCELLED"));
            return;
          }
          if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
          else if (ch >= " ") value += ch;
        }
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    stderr.write("\n");
  }
}

/**
 * One line from stdin, terminal or pipe (so scripts can answer prompts too); null at end of
 * input. The prompt goes to stderr, keeping stdout for results.
 */
export async function ask(io: CliIo, question: string): Promise<string | null> {
  // Piped stdin already at its end: no answer will come (a new readline would wait forever, and the process exit 0).
  if (!io.stdin.isTTY && (io.stdin as NodeJS.ReadStream).readableEnded) return null;
  (io.stdin as NodeJS.ReadStream & { ref?: () => void }).ref?.(); // an earlier prompt unref'd it
  const rl = readline.createInterface({ input: io.stdin, output: io.stdin.isTTY ? io.stderr : undefined, terminal: Boolean(io.stdin.isTTY) });
  if (!io.stdin.isTTY) io.stderr.write(question);
  try {
    return await new Promise<string | null>((resolve) => {
      rl.once("close", () => resolve(null));
      rl.once("SIGINT", () => {
        io.stderr.write("\n");
        rl.close();
      });
      if (io.stdin.isTTY) rl.question(question, resolve);
      else rl.once("line", resolve);
    });
  } finally {
    rl.close();
    io.stdin.pause();
    (io.stdin as NodeJS.ReadStream & { unref?: () => void }).unref?.();
  }
}
