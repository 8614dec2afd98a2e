import fs from "node:fs";
import path from "node:path";
import express from "express";
import type { NextFunction, Request, Response } from "express";
import { repoRoot } from "../common/paths";

/**
 * Serves the web console built by `scripts/build-console.mjs` (browser code in
 * src/console/client):
 *
 *   GET /                  -> index.html (strict CSP, never cached); a client that asks for
 *                             `Accept: application/json` gets the service map instead
 *   GET /console/assets/*  -> content-hashed bundle files (cached for a year, immutable)
 *
 * Mount it at the root: `app.use(consoleRouter(defaultConsoleAssetsDir(), serviceMap))`.
 */

export const CONSOLE_NOT_BUILT_MESSAGE = "ReClo web console not built: run npm run build";

/**
 * Everything comes from this origin and nothing runs inline: no inline scripts, no inline styles
 * (progress bars are native <progress> elements), no eval. connect-src lists ws: wss: because
 * older browsers do not map 'self' to the WebSocket scheme. The console shows no screenshots, so
 * images are limited to the origin (the favicon) and data: URLs.
 */
export const CONSOLE_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self' ws: wss:",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join("; ");

function sendNotBuilt(res: Response): void {
  res
    .status(503)
    .set({ "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" })
    .send(`${CONSOLE_NOT_BUILT_MESSAGE}\n`);
}

export function consoleRouter(assetsDir: string, serviceMap: Record<string, string>): express.Router {
  const router = express.Router();
  const indexFile = path.join(assetsDir, "index.html");

  router.get("/", (req: Request, res: Response, next: NextFunction) => {
    res.vary("Accept");
    // Scripts and monitoring that ask for JSON keep getting the service map; browsers ask for HTML.
    if (req.accepts(["html", "json"]) === "json") {
      res.json(serviceMap);
      return;
    }
    fs.readFile(indexFile, (error, html) => {
      if (error) {
        if (error.code === "ENOENT" || error.code === "ENOTDIR") {
          sendNotBuilt(res);
          return;
        }
        next(error);
        return;
      }
      res
        .status(200)
        .set({
          "Content-Type": "text/html; charset=utf-8",
          "Content-Security-Policy": CONSOLE_CONTENT_SECURITY_POLICY,
          // index.html names the current hashed assets, so it must be revalidated every time.
          "Cache-Control": "no-cache",
          "X-Content-Type-Options": "nosniff",
          "X-Frame-Options": "DENY",
          "Referrer-Policy": "no-referrer",
          "Cross-Origin-Opener-Policy": "same-origin",
        })
        .send(html);
    });
  });

  router.use(
    "/console/assets",
    express.static(path.join(assetsDir, "assets"), {
      // Every file name carries a content hash (see scripts/build-console.mjs).
      maxAge: "365d",
      immutable: true,
      index: false,
      redirect: false,
      dotfiles: "ignore",
      fallthrough: true,
      setHeaders(res) {
        res.setHeader("X-Content-Type-Options", "nosniff");
      },
    }),
    (_req: Request, res: Response) => {
      if (!fs.existsSync(indexFile)) {
        sendNotBuilt(res);
        return;
      }
      res.status(404).set("Content-Type", "text/plain; charset=utf-8").send("Not found\n");
    },
  );

  return router;
}

/** `<repo root>/dist/console`, where `npm run build` writes the bundle. */
export function defaultConsoleAssetsDir(): string {
  return path.join(repoRoot(), "dist", "console");
}
