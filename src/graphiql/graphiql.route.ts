import path from "node:path";
import express from "express";
import { repoRoot } from "../shared/paths";
import { bundleAssets, bundleIndex } from "../server/static-bundle";

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

export function graphiqlRouter(assetsDir: string): express.Router {
  const router = express.Router();
  const page = { dir: assetsDir, contentSecurityPolicy: GRAPHIQL_CONTENT_SECURITY_POLICY, notBuiltMessage: GRAPHIQL_NOT_BUILT_MESSAGE };
  router.get("/", bundleIndex(page));
  router.use("/assets", ...bundleAssets(page));
  return router;
}

/** `<repo root>/dist/graphiql`, where `npm run build` writes the bundle. */
export function defaultGraphiqlAssetsDir(): string {
  return path.join(repoRoot(), "dist", "graphiql");
}
