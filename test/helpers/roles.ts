/**
 * kiln's roles in the test process, over a real nats-server, with real LMDB stores in a temp dir
 * and real sandboxed workers: for integration tests that need to stop and restart single roles.
 */
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { start as startActorSystem, stop as stopActor } from "nact";
import pino from "pino";
import type { NatsConnection } from "nats";
import {
  startDispatcherRole,
  startRepoRole,
  startSchedulerRole,
  startSourceRole,
  startWorker,
  type DispatcherApi,
  type RepoApi,
  type RepoResult,
  type RoleContext,
  type RunningRole,
  type SchedulerApi,
  type SourceApi,
} from "../../actors/index.ts";
import { Identity, Role, RoleClient, RpcClient, connectNats, subjects, uploadFile } from "../../transport/index.ts";
import { check } from "./check.ts";
import { startServer, stopAll, type TestServer } from "./nats-server.ts";

export interface RoleCluster {
  server: TestServer;
  nc: NatsConnection;
  ctx: RoleContext;
  dataDir: string;
  admin: Identity;
  source: RoleClient<SourceApi>;
  repo: RoleClient<RepoApi>;
  dispatcher: RoleClient<DispatcherApi>;
  sched(arch?: string): RoleClient<SchedulerApi>;
  /** Running roles by name (`source`, `repo`, `dispatcher`, `scheduler:x86_64`, `worker:w1`). */
  roles: Map<string, RunningRole>;
  startScheduler(arch?: string): Promise<void>;
  stopRole(name: string): Promise<void>;
  /** Commits the files of a directory (the osc protocol: upload what is missing, commit). */
  commitDir(project: string, pkg: string, dir: string, comment?: string): Promise<void>;
  stop(): Promise<void>;
}

const md5File = (file: string): string => createHash("md5").update(readFileSync(file)).digest("hex");

export async function startRoleCluster(opts: { workers?: number; logLevel?: string } = {}): Promise<RoleCluster> {
  const server = await startServer();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kiln-roles-"));
  const log = pino({ level: opts.logLevel ?? "warn" });
  const nc = await connectNats({ servers: server.url, name: "test-roles", log });
  const system = startActorSystem();
  const ctx: RoleContext = { nc, rpc: new RpcClient(nc), system, log, dataDir, nodeId: "test-node", replicas: 1 };
  const roles = new Map<string, RunningRole>();
  roles.set("source", await startSourceRole(ctx));
  roles.set("repo", await startRepoRole(ctx));
  roles.set("dispatcher", await startDispatcherRole(ctx, { heartbeatMs: 500 }));
  const admin = Identity.create();
  const rpc = new RpcClient(nc, { signer: admin });
  const source = new RoleClient<SourceApi>(rpc, (t) => subjects.rpc(Role.Source, t));
  await source.call("user.add", { name: "admin", pubkey: admin.publicKey, admin: true });
  const cluster: RoleCluster = {
    server,
    nc,
    ctx,
    dataDir,
    admin,
    source,
    repo: new RoleClient<RepoApi>(rpc, (t) => subjects.rpc(Role.Repo, t)),
    dispatcher: new RoleClient<DispatcherApi>(rpc, (t) => subjects.rpc(Role.Dispatcher, t)),
    sched: (arch = "x86_64") => new RoleClient<SchedulerApi>(rpc, (t) => subjects.sched(arch, t)),
    roles,
    async startScheduler(arch = "x86_64") {
      roles.set(`scheduler:${arch}`, await startSchedulerRole(ctx, { arch, debounceMs: 5 }));
    },
    async stopRole(name) {
      await roles.get(name)?.stop();
      roles.delete(name);
    },
    async commitDir(project, pkg, dir, comment = "") {
      const files = readdirSync(dir)
        .filter((f) => statSync(path.join(dir, f)).isFile())
        .map((name) => ({ name, md5: md5File(path.join(dir, name)), size: statSync(path.join(dir, name)).size }));
      for (let i = 0; i < 3; i++) {
        const r = await source.call("package.commit", { project, package: pkg, files, comment });
        if ("revision" in r) return;
        for (const m of r.missing) await uploadFile(source, path.join(dir, m.name), { md5: m.md5, size: m.size });
      }
      throw new Error("commit kept asking for files");
    },
    async stop() {
      for (const r of [...roles.values()].reverse()) await r.stop();
      roles.clear();
      stopActor(system);
      await nc.drain();
      await stopAll([server]);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  await cluster.startScheduler();
  for (let i = 0; i < (opts.workers ?? 1); i++) {
    roles.set(`worker:w${i + 1}`, await startWorker(ctx, { workerId: `w${i + 1}`, jobs: 1 }));
  }
  return cluster;
}

/** Writes a package directory with a noarch spec (no sources), for builds that take a moment. */
export function writeSpec(
  root: string,
  name: string,
  o: {
    version?: string;
    buildRequires?: string[];
    provides?: string[];
    requires?: string[];
    body?: string;
    /** Packages whose installed version file this one copies into its own (its output depends on them). */
    embeds?: string[];
    /** A %build section running this (to fail, or to take a while). */
    build?: string;
  } = {}
): string {
  const dir = path.join(root, name);
  mkdirSync(dir, { recursive: true });
  const lines = [
    `Name: ${name}`,
    `Version: ${o.version ?? "1.0"}`,
    "Release: 1",
    `Summary: ${name}`,
    "License: MIT",
    "BuildArch: noarch",
    ...(o.buildRequires ?? []).map((d) => `BuildRequires: ${d}`),
    ...(o.provides ?? []).map((d) => `Provides: ${d}`),
    ...(o.requires ?? []).map((d) => `Requires: ${d}`),
    "%description",
    `${name} ${o.body ?? ""}`,
    ...(o.build === undefined ? [] : ["%build", o.build]),
    "%install",
    `mkdir -p %{buildroot}/usr/share/${name}`,
    `echo ${o.version ?? "1.0"} > %{buildroot}/usr/share/${name}/version`,
    ...(o.embeds ?? []).map((d) => `cat /usr/share/${d}/version > %{buildroot}/usr/share/${name}/from-${d}`),
    "%files",
    `/usr/share/${name}`,
    "",
  ];
  writeFileSync(path.join(dir, `${name}.spec`), lines.join("\n"));
  return dir;
}

/** The stored result of a package in repository `r` for x86_64 (null before its first build). */
export const packageResult = (c: RoleCluster, project: string, pkg: string) =>
  c.repo.call("result.get", { project, repository: "r", arch: "x86_64", package: pkg });

/** The meta of a project with one repository `r` for x86_64; `extra` adds attributes to the repository. */
export const projectMeta = (name: string, extra = ""): string =>
  `<project name="${name}"><title/><description/><repository name="r"${extra}><arch>x86_64</arch></repository></project>`;

const WAITING = new Set(["blocked", "scheduled", "dispatching", "building", "finished"]);

/**
 * Polls until the scheduler has nothing left to do for the project, and returns its last results.
 * `alsoWaitFor` names more codes to wait through (e.g. `unknown` while packages are being read).
 */
export async function settledResults(
  c: RoleCluster,
  project: string,
  timeoutMs = 120_000,
  alsoWaitFor: readonly string[] = []
): Promise<RepoResult[]> {
  let last: RepoResult[] = [];
  const waiting = (code: string): boolean => WAITING.has(code) || alsoWaitFor.includes(code);
  await check(
    async () => {
      last = await c.sched().call("results.get", { project });
      return last.length > 0 && last.every((r) => !r.dirty && r.packages.every((p) => !waiting(p.code)));
    },
    { timeoutMs, intervalMs: 100, name: `settle ${project}` }
  );
  return last;
}

/** {@link settledResults} as each package's code, with its details after a colon. */
export async function settledStates(
  c: RoleCluster,
  project: string,
  timeoutMs = 120_000
): Promise<Map<string, string>> {
  const last = await settledResults(c, project, timeoutMs);
  return new Map(last.flatMap((r) => r.packages.map((p) => [p.package, p.code + (p.details ? `: ${p.details}` : "")])));
}
