/**
 * A read-only HTTP server for the published tree, so that `dnf` on this machine can use a
 * repository by URL. Any web server pointed at the publish directory does the same job; this
 * one exists so that `kiln up` works alone.
 *
 * Only GET and HEAD; no path segment may start with a dot (which hides the publisher's version
 * directories and keeps `..` out); directories are listed.
 */
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { Logger } from "pino";

const TYPES: Record<string, string> = {
  ".xml": "application/xml",
  ".rpm": "application/x-rpm",
  ".gz": "application/gzip",
  ".zst": "application/zstd",
  ".xz": "application/x-xz",
  ".bz2": "application/x-bzip2",
  ".repo": "text/plain; charset=utf-8",
  ".asc": "text/plain; charset=utf-8",
  ".key": "text/plain; charset=utf-8",
};

export interface PublishServerOptions {
  root: string;
  /** 0 picks a free port. */
  port: number;
  /** @default "127.0.0.1" */
  host?: string;
  log: Logger;
}

export interface PublishServer {
  url: string;
  close(): Promise<void>;
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Resolves a request path to a file under `root`, or undefined when it is not allowed. */
export function resolveRequestPath(root: string, urlPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath.split("?")[0]!);
  } catch {
    return undefined;
  }
  if (decoded.includes("\u0000") || decoded.includes("\\")) return undefined;
  const segments = decoded.split("/").filter((s) => s !== "");
  if (segments.some((s) => s.startsWith("."))) return undefined;
  return path.join(root, ...segments);
}

export async function startPublishServer(opts: PublishServerOptions): Promise<PublishServer> {
  const log = opts.log.child({ mod: "publish-http" });
  const server = http.createServer((req, res) => {
    void (async () => {
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD" }).end();
        return;
      }
      const file = resolveRequestPath(opts.root, req.url ?? "/");
      if (!file) {
        res.writeHead(404).end();
        return;
      }
      const st = await stat(file).catch(() => undefined);
      if (!st) {
        res.writeHead(404).end();
        return;
      }
      if (st.isDirectory()) {
        if (!(req.url ?? "/").split("?")[0]!.endsWith("/")) {
          res.writeHead(301, { location: `${req.url}/` }).end();
          return;
        }
        const names = (await readdir(file).catch(() => [] as string[])).filter((n) => !n.startsWith(".")).sort();
        const body = `<!DOCTYPE html><html><body><ul>\n${names
          .map((n) => `<li><a href="${encodeURIComponent(n)}">${escapeHtml(n)}</a></li>`)
          .join("\n")}\n</ul></body></html>\n`;
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": Buffer.byteLength(body) });
        res.end(req.method === "HEAD" ? undefined : body);
        return;
      }
      if (!st.isFile()) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, {
        "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
        "content-length": st.size,
        "last-modified": st.mtime.toUTCString(),
      });
      if (req.method === "HEAD") {
        res.end();
        return;
      }
      createReadStream(file)
        .on("error", (err) => {
          log.warn({ err, file }, "read failed while serving");
          res.destroy();
        })
        .pipe(res);
    })().catch((err: unknown) => {
      log.warn({ err }, "request failed");
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host ?? "127.0.0.1", () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.address}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
