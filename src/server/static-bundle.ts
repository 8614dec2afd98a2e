import fs from "node:fs";
import path from "node:path";
import express from "express";
import type { NextFunction, Request, RequestHandler, Response } from "express";

/**
 * Serving a page bundle built at build time (GraphiQL, the web console): index.html with a
 * strict CSP that is revalidated every time, and content-hashed assets cached for a year.
 */

export interface BundlePage {
  /** dist/<name>: index.html and assets/. */
  dir: string;
  contentSecurityPolicy: string;
  /** Plain text of the 503 answered while the bundle is not built. */
  notBuiltMessage: string;
  extraHeaders?: Record<string, string>;
}

function sendNotBuilt(res: Response, message: string): void {
  res
    .status(503)
    .set({ "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" })
    .send(`${message}\n`);
}

/** GET handler for the page's index.html. */
export function bundleIndex(page: BundlePage): (req: Request, res: Response, next: NextFunction) => void {
  const indexFile = path.join(page.dir, "index.html");
  return (_req, res, next) => {
    fs.readFile(indexFile, (error, html) => {
      if (error) {
        if (error.code === "ENOENT" || error.code === "ENOTDIR") {
          sendNotBuilt(res, page.notBuiltMessage);
          return;
        }
        next(error);
        return;
      }
      res
        .status(200)
        .set({
          "Content-Type": "text/html; charset=utf-8",
          "Content-Security-Policy": page.contentSecurityPolicy,
          // index.html names the current hashed assets, so it must be revalidated every time.
          "Cache-Control": "no-cache",
          "X-Content-Type-Options": "nosniff",
          "X-Frame-Options": "DENY",
          "Referrer-Policy": "no-referrer",
          ...page.extraHeaders,
        })
        .send(html);
    });
  };
}

/** Middleware for the page's assets/ (mount it at the URL prefix index.html uses). */
export function bundleAssets(page: BundlePage): RequestHandler[] {
  const indexFile = path.join(page.dir, "index.html");
  return [
    express.static(path.join(page.dir, "assets"), {
      // Every file name carries a content hash (see scripts/build-*.mjs).
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
        sendNotBuilt(res, page.notBuiltMessage);
        return;
      }
      res.status(404).set("Content-Type", "text/plain; charset=utf-8").send("Not found\n");
    },
  ];
}
