/**
 * An in-process kiln for worker and dispatcher tests: a real nats-server, and the source, repo,
 * dispatcher and scheduler roles plus any number of workers in this process (each role with its
 * own NATS connection, as on separate hosts), signed as `kiln up` signs: an admin identity for
 * the test's own requests and a service identity for the roles.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { start as startActorSystem, stop as stopActorSystem } from "nact";
import pino, { type Logger } from "pino";
import {
  startDispatcherRole,
  startRepoRole,
  startSchedulerRole,
  startSourceRole,
  startWorker,
  type DispatcherApi,
  type DispatcherOptions,
  type PackageResult,
  type RepoApi,
  type RoleContext,
  type RunningRole,
  type SchedulerApi,
  type SourceApi,
  type StoredResult,
  type WorkerOptions,
} from "../../actors/index.ts";
import {
  Identity,
  Role,
  RoleClient,
  RpcClient,
  connectNats,
  readBlobBytes,
  subjects,
  uploadStream,
} from "../../transport/index.ts";
import { check } from "./check.ts";
import { startServer, stopAll, type TestServer } from "./nats-server.ts";

export const ARCH = "x86_64";

export interface StackOptions {
  dispatcher?: DispatcherOptions;
  /** Workers started with the stack. */
  workers?: Partial<WorkerOptions>[];
  /** Use this NATS URL instead of starting a server. */
  natsUrl?: string;
  /** Roles besides workers: all of them by default. */
  roles?: ("source" | "repo" | "dispatcher" | "scheduler")[];
  log?: Logger;
}

export interface Stack {
  server?: TestServer;
  natsUrl: string;
  dataDir: string;
  log: Logger;
  source: RoleClient<SourceApi>;
  repo: RoleClient<RepoApi>;
  /** Signed as the admin, as the CLI calls: listings, job details and aborts are access-checked. */
  dispatcher: RoleClient<DispatcherApi>;
  /** Unsigned, as the scheduler submits jobs (NATS permissions guard `job.submit`). */
  submitter: RoleClient<DispatcherApi>;
  sched: RoleClient<SchedulerApi>;
  /** Starts a worker in this process (own NATS connection); stop it with `stopRole`. */
  addWorker(opts?: Partial<WorkerOptions>): Promise<RunningRole>;
  /** Starts a role again (after `stopRole`), e.g. to restart the dispatcher. */
  startRole(name: "dispatcher" | "repo" | "source" | "scheduler", opts?: DispatcherOptions): Promise<RunningRole>;
  stopRole(role: RunningRole): Promise<void>;
  roles: RunningRole[];
  /** Creates a project with one repository "standard" for x86_64 (and the given prjconf). */
  project(name: string, opts?: { prjconf?: string; meta?: string }): Promise<void>;
  /** Commits files (name → content) as a new revision; returns its srcmd5. */
  commit(project: string, pkg: string, files: Record<string, string | Buffer>): Promise<string>;
  /** The scheduler's view of one package. */
  result(project: string, pkg: string): Promise<PackageResult | undefined>;
  /** Waits until the package has one of `codes` (and the scheduler is not dirty). */
  waitCode(project: string, pkg: string, codes: string[], timeoutMs?: number): Promise<PackageResult>;
  stored(project: string, pkg: string): Promise<StoredResult | null>;
  /** The stored build log of a package. */
  buildLog(project: string, pkg: string): Promise<string>;
  stop(): Promise<void>;
}

interface Host {
  ctx: RoleContext;
  close(): Promise<void>;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const log = opts.log ?? pino({ level: process.env.KILN_TEST_LOG ?? "silent" });
  const server = opts.natsUrl ? undefined : await startServer();
  const natsUrl = opts.natsUrl ?? server!.url;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kiln-wstack-"));
  const admin = Identity.create();
  const roleId = Identity.create();
  const hosts: Host[] = [];
  const roles: RunningRole[] = [];
  const roleHost = new Map<RunningRole, Host>();
  let n = 0;

  const host = async (dir: string): Promise<Host> => {
    const nc = await connectNats({ servers: natsUrl, name: `kiln-test-${++n}`, log });
    const system = startActorSystem();
    const ctx: RoleContext = {
      nc,
      rpc: new RpcClient(nc, { signer: roleId }),
      system,
      log,
      dataDir: dir,
      nodeId: "test-node",
      replicas: 1,
    };
    const h: Host = {
      ctx,
      async close(): Promise<void> {
        stopActorSystem(system);
        await nc.drain().catch(() => undefined);
      },
    };
    hosts.push(h);
    return h;
  };
  const run = async (start: (ctx: RoleContext) => Promise<RunningRole>, dir = dataDir): Promise<RunningRole> => {
    const h = await host(dir);
    const r = await start(h.ctx);
    roles.push(r);
    roleHost.set(r, h);
    return r;
  };

  const startRole: Stack["startRole"] = (name, dopts) => {
    switch (name) {
      case "source":
        return run((ctx) =>
          startSourceRole(ctx, { serviceUsers: [{ name: "kiln-roles-test", pubkey: roleId.publicKey }] })
        );
      case "repo":
        return run((ctx) => startRepoRole(ctx));
      case "dispatcher":
        return run((ctx) => startDispatcherRole(ctx, dopts ?? opts.dispatcher ?? {}));
      case "scheduler":
        return run((ctx) => startSchedulerRole(ctx, { arch: ARCH }));
    }
  };
  const wanted = opts.roles ?? ["source", "repo", "dispatcher", "scheduler"];
  for (const r of ["source", "repo", "dispatcher", "scheduler"] as const) if (wanted.includes(r)) await startRole(r);

  const clientNc = await connectNats({ servers: natsUrl, name: "kiln-test-client", log });
  const rpc = new RpcClient(clientNc, { signer: admin });
  const source = new RoleClient<SourceApi>(rpc, (t) => subjects.rpc(Role.Source, t));
  const repo = new RoleClient<RepoApi>(rpc, (t) => subjects.rpc(Role.Repo, t));
  // Signed as the CLI signs: the dispatcher asks the source role who may list, read or abort jobs.
  const dispatcher = new RoleClient<DispatcherApi>(rpc, (t) => subjects.rpc(Role.Dispatcher, t));
  const submitter = new RoleClient<DispatcherApi>(new RpcClient(clientNc), (t) => subjects.rpc(Role.Dispatcher, t));
  const sched = new RoleClient<SchedulerApi>(rpc, (t) => subjects.sched(ARCH, t));
  if (wanted.includes("source")) await source.call("user.add", { name: "admin", pubkey: admin.publicKey, admin: true });

  let workerN = 0;
  const addWorker = (w: Partial<WorkerOptions> = {}): Promise<RunningRole> => {
    const id = w.workerId ?? `w${++workerN}`;
    return run((ctx) => startWorker(ctx, { ...w, workerId: id }), mkdtempSync(path.join(dataDir, "worker-")));
  };
  for (const w of opts.workers ?? []) await addWorker(w);

  const stopRole = async (r: RunningRole): Promise<void> => {
    const i = roles.indexOf(r);
    if (i < 0) return;
    roles.splice(i, 1);
    await r.stop();
    await roleHost.get(r)?.close();
  };

  const result = async (project: string, pkg: string): Promise<PackageResult | undefined> => {
    const rs = await sched.call("results.get", { project, package: pkg }, { idempotent: true });
    return rs.flatMap((r) => (r.dirty ? [] : r.packages)).find((p) => p.package === pkg);
  };

  return {
    ...(server ? { server } : {}),
    natsUrl,
    dataDir,
    log,
    source,
    repo,
    dispatcher,
    submitter,
    sched,
    addWorker,
    startRole,
    stopRole,
    roles,
    async project(name, o = {}): Promise<void> {
      const xml =
        o.meta ??
        `<project name="${name}"><title/><description/><repository name="standard"><arch>${ARCH}</arch></repository></project>`;
      await source.call("project.put-meta", { project: name, xml });
      if (o.prjconf !== undefined) await source.call("project.put-config", { project: name, text: o.prjconf });
    },
    async commit(project, pkg, files): Promise<string> {
      const entries = [];
      for (const [name, content] of Object.entries(files)) {
        const data = typeof content === "string" ? Buffer.from(content) : content;
        const md5 = createHash("md5").update(data).digest("hex");
        await uploadStream(source, Readable.from([data]), { size: data.length });
        entries.push({ name, md5, size: data.length });
      }
      const r = await source.call("package.commit", { project, package: pkg, files: entries });
      if (!("revision" in r))
        throw new Error(`commit of ${pkg} still misses ${r.missing.map((m) => m.name).join(", ")}`);
      return r.revision.srcmd5;
    },
    result,
    async waitCode(project, pkg, codes, timeoutMs = 60_000): Promise<PackageResult> {
      let last: PackageResult | undefined;
      return check(
        async () => {
          last = await result(project, pkg);
          return last && codes.includes(last.code) ? last : undefined;
        },
        { timeoutMs, intervalMs: 50, name: `${project}/${pkg} ${codes.join("|")} (last: ${JSON.stringify(last)})` }
      );
    },
    async stored(project, pkg): Promise<StoredResult | null> {
      return repo.call(
        "result.get",
        { project, repository: "standard", arch: ARCH, package: pkg },
        { idempotent: true }
      );
    },
    async buildLog(project, pkg): Promise<string> {
      const r = await repo.call(
        "result.get",
        { project, repository: "standard", arch: ARCH, package: pkg },
        { idempotent: true }
      );
      if (!r?.logSha256) return "";
      return (await readBlobBytes(repo, r.logSha256, 64 * 1024 * 1024)).toString("utf8");
    },
    async stop(): Promise<void> {
      try {
        // Workers first, then the other roles in reverse start order.
        for (const r of [...roles].reverse()) await stopRole(r).catch(() => undefined);
        for (const h of hosts) await h.close().catch(() => undefined);
        await clientNc.drain().catch(() => undefined);
      } finally {
        if (server) await stopAll([server]);
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

/** A spec that builds a noarch package with one file, for fast builds. */
export function trivialSpec(name: string, opts: { content?: string; build?: string; extra?: string } = {}): string {
  return [
    `Name: ${name}`,
    "Version: 1.0",
    "Release: 1",
    `Summary: ${name} for kiln worker tests`,
    "License: MIT",
    "BuildArch: noarch",
    opts.extra ?? "",
    "%description",
    `${name}.`,
    ...(opts.build ? ["%build", opts.build] : []),
    "%install",
    `mkdir -p %{buildroot}/usr/share/${name}`,
    `echo '${opts.content ?? "1"}' > %{buildroot}/usr/share/${name}/data`,
    "%files",
    `/usr/share/${name}/data`,
    "",
  ].join("\n");
}
