import type { Browser, BrowserContextOptions, Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import { ensureConsoleBundle, openBrowser } from "./browser";
import { signUp, startStack, type TestStack, type TestUser } from "./stack";

/** What a console test works with, filled in by its beforeAll. */
export interface ConsoleFixture {
  stack: TestStack;
  alice: TestUser;
  browser: Browser;
  page: Page;
  /** External requests, CSP violations, console and page errors (openBrowser): tests expect it empty. */
  problems: string[];
}

/**
 * The usual console test setup, registered in the calling describe: the console bundle built, an
 * in-process stack, one signed-up user and a Chromium page; all closed after the file.
 */
export function useConsole(opts: { context?: BrowserContextOptions; ignoreConsole?: RegExp } = {}): ConsoleFixture {
  const f = { problems: [] as string[] } as ConsoleFixture;
  beforeAll(async () => {
    await ensureConsoleBundle();
    f.stack = await startStack();
    f.alice = await signUp(f.stack);
    Object.assign(f, await openBrowser(f.problems, opts));
  }, 180_000);
  afterAll(async () => {
    await f.browser?.close();
    await f.stack?.stop();
  });
  return f;
}
