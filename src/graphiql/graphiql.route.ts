import fs from "node:fs";
import path from "node:path";
import express from "express";
import type { NextFunction, Request, Response } from "express";
import { repoRoot } from "../common/paths";

/**
 * Serves the self-hosted GraphiQL page built by `scripts/build-graphiql.mjs`.
 *
 * Mount it as `app.use("/graphiql", graphiqlRouter(defaultGraphiqlAssetsDir()))`:
 *   GET /graphiql           -> index.html (strict CSP, never cached)
 *   GET /graphiql/assets/*  -> content-hashed bundle files (cached for a year, immutable)
 * The asset URLs inside index.html are absolute (`/graphiql/assets/...`), so the mount path
 * must be `/graphiql`.
 */

export const GRAPHIQL_NOT_BUILT_MESSAGE = "GraphiQL bundle not built: run npm run build";

/**
 * Everything is served from this origin. Notes:
 * - style-src 'unsafe-inline': Monaco creates <style> elements and style attributes at runtime
 *   (themes, decorations, layout); without it Chromium blocks dozens of them.
 * - img-src data:: Monaco's CSS uses a few inline data: SVG/PNG images.
 * - fonts and the Monaco web workers are real files under /graphiql/assets.
 * - connect-src ws: wss: because older browsers do not map 'self' to the WebSocket scheme.
 */
export const GRAPHIQL_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self' ws: wss:",
  "worker-src 'self'",
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
    .send(`${GRAPHIQL_NOT_BUILT_MESSAGE}\n`);
}

export function graphiqlRouter(assetsDir: string): express.Router {
  const router = express.Router();
  const indexFile = path.join(assetsDir, "index.html");

  router.get("/", (_req: Request, res: Response, next: NextFunction) => {
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
          "Content-Security-Policy": GRAPHIQL_CONTENT_SECURITY_POLICY,
          // index.html names the current hashed assets, so it must be revalidated every time.
          "Cache-Control": "no-cache",
          "X-Content-Type-Options": "nosniff",
          "X-Frame-Options": "DENY",
          "Referrer-Policy": "no-referrer",
        })
        .send(html);
    });
  });

  router.use(
    "/assets",
    express.static(path.join(assetsDir, "assets"), {
      // Every file name carries a content hash (see scripts/build-graphiql.mjs).
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

/** `<repo root>/dist/graphiql`, where `npm run build` writes the bundle. */
export function defaultGraphiqlAssetsDir(): string {
  return path.join(repoRoot(), "dist", "graphiql");
}
