import path from "node:path";
import express from "express";
import type { NextFunction, Request, Response } from "express";
import { repoRoot } from "../shared/paths";
import { bundleAssets, bundleIndex } from "../server/static-bundle";

/**
 * Serves the web console built by `scripts/build-console.mjs` (browser code in
 * src/console/client):
 *
 *   GET /                  -> index.html (strict CSP, never cached); a client that asks for
 *                             `Accept: application/json` gets the service map instead
 *   GET /verify-email, /reset-password
 *                          -> index.html too: the pages the account e-mails link to (?token=…)
 *   GET /console/assets/*  -> content-hashed bundle files (cached for a year, immutable)
 *
 * Mount it at the root: `app.use(consoleRouter(defaultConsoleAssetsDir(), serviceMap))`.
 */

export const CONSOLE_NOT_BUILT_MESSAGE = "ReClo web console not built: run npm run build";

/**
 * Everything comes from this origin and nothing runs inline: no inline scripts, no inline styles
 * (progress bars are native <progress> elements), no eval. connect-src lists ws: wss: because
 * older browsers do not map 'self' to the WebSocket scheme. Images: the origin (the favicon),
 * data: URLs, and the object store's origin for boot-verification screenshots (presigned GETs).
 */
export function consoleContentSecurityPolicy(imageOrigins: string[] = []): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    ["img-src 'self' data:", ...imageOrigins].join(" "),
    "connect-src 'self' ws: wss:",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
  ].join("; ");
}

export const CONSOLE_CONTENT_SECURITY_POLICY = consoleContentSecurityPolicy();

export function consoleRouter(assetsDir: string, serviceMap: Record<string, string>, opts: { imageOrigins?: string[] } = {}): express.Router {
  const router = express.Router();
  const page = { dir: assetsDir, contentSecurityPolicy: consoleContentSecurityPolicy(opts.imageOrigins), notBuiltMessage: CONSOLE_NOT_BUILT_MESSAGE, extraHeaders: { "Cross-Origin-Opener-Policy": "same-origin" } };
  const index = bundleIndex(page);
  router.get("/", (req: Request, res: Response, next: NextFunction) => {
    res.vary("Accept");
    // Scripts and monitoring that ask for JSON keep getting the service map; browsers ask for HTML.
    if (req.accepts(["html", "json"]) === "json") {
      res.json(serviceMap);
      return;
    }
    index(req, res, next);
  });
  // The pages the account e-mails link to (verification, password reset): the console reads the token.
  router.get(["/verify-email", "/reset-password"], index);
  router.use("/console/assets", ...bundleAssets(page));
  return router;
}

/** `<repo root>/dist/console`, where `npm run build` writes the bundle. */
export function defaultConsoleAssetsDir(): string {
  return path.join(repoRoot(), "dist", "console");
}
