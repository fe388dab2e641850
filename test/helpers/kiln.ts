/**
 * Running the real `kiln` command in tests: `kiln up` as a child process on free loopback ports,
 * and client commands as child processes, as a user would.
 */
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { check } from "./check.ts";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const KILN_BIN = path.join(REPO_ROOT, "cli", "bin", "kiln.js");

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface KilnRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface KilnEnv {
  dataDir: string;
  natsUrl: string;
}

/** Runs one `kiln` command and returns its exit code and output (never throws on failure). */
export async function kiln(
  env: KilnEnv,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {}
): Promise<KilnRun> {
  const r = await execa("node", [KILN_BIN, ...args], {
    env: { KILN_DATA: env.dataDir, KILN_NATS_URL: env.natsUrl, KILN_LOG_LEVEL: "warn", HOME: env.dataDir },
    extendEnv: true,
    reject: false,
    timeout: opts.timeoutMs ?? 120_000,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Like {@link kiln} but fails the test with the command's output when it exits non-zero. */
export async function kilnOk(
  env: KilnEnv,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {}
): Promise<string> {
  const r = await kiln(env, args, opts);
  if (r.exitCode !== 0) throw new Error(`kiln ${args.join(" ")} exited ${r.exitCode}\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

export interface KilnUp extends KilnEnv {
  proc: ResultPromise;
  /** Everything `kiln up` wrote to stderr so far (logs). */
  log(): string;
  /** SIGTERM and wait; returns the exit code. */
  stop(): Promise<number>;
}

/** Starts `kiln up` on free ports with a fresh data directory and waits until every role answers. */
export async function startKilnUp(
  opts: { workers?: number; extraArgs?: string[]; dataDir?: string } = {}
): Promise<KilnUp> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), "kiln-e2e-"));
  const port = await freePort();
  const natsUrl = `nats://127.0.0.1:${port}`;
  const proc = execa(
    "node",
    [
      KILN_BIN,
      "--data",
      dataDir,
      "up",
      "--nats-port",
      String(port),
      "--workers",
      String(opts.workers ?? 1),
      ...(opts.extraArgs ?? []),
    ],
    { env: { KILN_LOG_LEVEL: "info", HOME: dataDir }, extendEnv: true, reject: false, buffer: false, stdin: "ignore" }
  );
  let log = "";
  proc.stderr?.on("data", (d: Buffer) => {
    log += d.toString();
    if (log.length > 4_000_000) log = log.slice(-2_000_000);
  });
  proc.stdout?.on("data", () => undefined);
  const env: KilnEnv = { dataDir, natsUrl };
  let exited = false;
  void proc.then(() => (exited = true));
  await check(
    async () => {
      if (exited) throw new Error(`kiln up exited early:\n${log.slice(-4000)}`);
      const r = await kiln(env, ["--json", "status", "--wait", "300"]);
      if (r.exitCode !== 0) return false;
      const roles = (JSON.parse(r.stdout) as { role: string }[]).map((p) => p.role);
      return (
        ["source", "repo", "dispatcher", "worker"].every((x) => roles.includes(x)) &&
        roles.some((x) => x.startsWith("scheduler:"))
      );
    },
    { timeoutMs: 60_000, intervalMs: 250, name: "kiln up ready" }
  );
  return {
    ...env,
    proc,
    log: () => log,
    async stop(): Promise<number> {
      if (!exited) proc.kill("SIGTERM");
      const r = await proc;
      return r.exitCode ?? -1;
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
