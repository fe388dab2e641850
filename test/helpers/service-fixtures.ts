/**
 * What source service tests need from outside kiln: an HTTP server on loopback that serves files
 * and git repositories (git's "dumb" protocol: the static files of bare repositories), git
 * repositories with fixed commit times, and a services directory with kiln's programs plus
 * programs the test writes.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { DEFAULT_SERVICES_DIR } from "../../actors/index.ts";

export interface LoopbackServer {
  /** `http://127.0.0.1:<port>` */
  base: string;
  port: number;
  /** URL path → content. */
  files: Map<string, Buffer>;
  /**
   * Holds requests for `urlPath` (a file of {@link files}) until the returned function is called,
   * for runs that must still be running; resolves once a request is being held.
   */
  hold(urlPath: string): { held: Promise<void>; release(): void };
  /** Creates a work repository with `build`, publishes it bare at `<base>/git/<name>.git`; returns the work tree. */
  publishRepo(name: string, build: (work: string) => Promise<void>): Promise<string>;
  /** Publishes the work tree's current state again (after new commits). */
  republish(name: string): Promise<void>;
  close(): Promise<void>;
}

export function sha256(b: Buffer | string): string {
  return createHash("sha256").update(b).digest("hex");
}

export async function put(dir: string, rel: string, content: string | Buffer): Promise<void> {
  await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
  await writeFile(path.join(dir, rel), content);
}

/** git with a fixed author, committer and time, and no user configuration. */
export async function git(cwd: string, args: string[], when = 1700000000): Promise<string> {
  const date = `@${when} +0000`;
  const r = await execa("git", args, {
    cwd,
    env: {
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_AUTHOR_NAME: "Kiln Test",
      GIT_AUTHOR_EMAIL: "test@kiln.invalid",
      GIT_COMMITTER_NAME: "Kiln Test",
      GIT_COMMITTER_EMAIL: "test@kiln.invalid",
      GIT_AUTHOR_DATE: date,
      GIT_COMMITTER_DATE: date,
    },
  });
  return String(r.stdout);
}

export async function startLoopbackServer(): Promise<LoopbackServer> {
  const root = await mkdtemp(path.join(os.tmpdir(), "kiln-svc-http-"));
  const files = new Map<string, Buffer>();
  const holds = new Map<string, { gate: Promise<void>; arrived: () => void }>();
  const serveFile = async (res: http.ServerResponse, file: string): Promise<void> => {
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
      res.end(body);
    } catch {
      res.writeHead(404).end("not found\n");
    }
  };
  const server = http.createServer((req, res) => {
    const p = decodeURIComponent(new URL(req.url ?? "/", "http://loopback").pathname);
    if (p.startsWith("/git/")) {
      const rel = path.normalize(p.slice("/git/".length));
      if (rel.startsWith("..") || path.isAbsolute(rel)) res.writeHead(403).end();
      else void serveFile(res, path.join(root, rel));
      return;
    }
    const send = (): void => {
      const body = files.get(p);
      if (!body) {
        res.writeHead(404).end("not found\n");
        return;
      }
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
      res.end(body);
    };
    const h = holds.get(p);
    if (!h) return send();
    h.arrived();
    void h.gate.then(send);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const republish = async (name: string): Promise<void> => {
    const bare = path.join(root, `${name}.git`);
    await rm(bare, { recursive: true, force: true });
    await execa("git", ["clone", "--quiet", "--bare", path.join(root, "work", name), bare], {
      env: { GIT_CONFIG_GLOBAL: "/dev/null" },
    });
    await execa("git", ["update-server-info"], { cwd: bare, env: { GIT_CONFIG_GLOBAL: "/dev/null" } });
  };
  return {
    base: `http://127.0.0.1:${port}`,
    port,
    files,
    hold(urlPath) {
      let release!: () => void;
      let arrived!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const held = new Promise<void>((r) => (arrived = r));
      holds.set(urlPath, { gate, arrived });
      return {
        held,
        release: () => {
          holds.delete(urlPath);
          release();
        },
      };
    },
    async publishRepo(name, build) {
      const work = path.join(root, "work", name);
      await mkdir(work, { recursive: true });
      await git(work, ["init", "--quiet", "--initial-branch=main"]);
      await build(work);
      await republish(name);
      return work;
    },
    republish,
    async close() {
      server.closeAllConnections();
      server.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** A gzipped tarball of `files` below the top directory `top/`, made with GNU tar. */
export async function tarball(top: string, files: Record<string, string>): Promise<Buffer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-svc-tar-"));
  try {
    for (const [rel, content] of Object.entries(files)) await put(path.join(dir, top), rel, content);
    await execa("tar", ["--owner=0", "--group=0", "--mtime=@1700000000", "-czf", "out.tar.gz", top], { cwd: dir });
    return await readFile(path.join(dir, "out.tar.gz"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A services directory the sandbox can read (mode 0755): kiln's own programs, plus `extra`
 * (name → script text) written as executables.
 */
export async function servicesDirWith(extra: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "kiln-svc-programs-"));
  await chmod(dir, 0o755);
  await cp(DEFAULT_SERVICES_DIR, dir, { recursive: true });
  for (const [name, text] of Object.entries(extra)) {
    await writeFile(path.join(dir, name), text);
    await chmod(path.join(dir, name), 0o755);
  }
  return dir;
}
