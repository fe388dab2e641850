/**
 * The repo role (and the publisher) on a real nats-server with a real source role, for
 * integration tests. The dispatcher is a stand-in that knows the jobs the test creates, so a
 * test stores results the way a worker does: upload the files, then `result.put`.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { start as startActorSystem, stop as stopActorSystem } from "nact";
import type { NatsConnection, Subscription } from "nats";
import pino from "pino";
import {
  startPublisherRole,
  startRepoRole,
  startSourceRole,
  type BuildJob,
  type PublisherApi,
  type PublisherOptions,
  type RepoApi,
  type RoleContext,
  type RunningPublisher,
  type RunningRole,
  type SourceApi,
} from "../../actors/index.ts";
import {
  Identity,
  Role,
  RoleClient,
  RpcClient,
  connectNats,
  decode,
  serve,
  subjects,
  type EventBase,
} from "../../transport/index.ts";
import { jobFields, uploadAs } from "./jobs.ts";
import { startServer, stopAll, type TestServer } from "./nats-server.ts";

export const testLog = pino({ level: process.env.KILN_TEST_LOG ?? "silent" });

export interface StoreBuildOptions {
  project: string;
  repository: string;
  arch: string;
  package: string;
  /** Local paths of the files the "worker" uploads. */
  files: string[];
  code?: "succeeded" | "failed";
  /** Content of the uploaded `_meta`. */
  meta?: string;
  /** The job's versrel and build counter. @default `1.0-<n>`, 1 */
  versrel?: string;
  bcnt?: number;
}

export class RepoHarness {
  server!: TestServer;
  nc!: NatsConnection;
  ctx!: RoleContext;
  dataDir!: string;
  /** Signed by an admin identity. */
  admin!: RoleClient<SourceApi>;
  /** Unsigned: an anonymous caller. */
  repo!: RoleClient<RepoApi>;
  /** Signed by the admin identity. */
  adminRepo!: RoleClient<RepoApi>;
  adminIdentity!: Identity;
  /** Signed by the admin identity. */
  publisherClient!: RoleClient<PublisherApi>;
  source?: RunningRole;
  repoRole?: RunningRole;
  publisher?: RunningPublisher;
  readonly events: (EventBase & Record<string, unknown>)[] = [];
  readonly jobs = new Map<string, { job: BuildJob; workerId: string }>();
  #subs: Subscription[] = [];
  #n = 0;

  static async start(opts: { repo?: boolean; publisher?: PublisherOptions } = {}): Promise<RepoHarness> {
    const h = new RepoHarness();
    h.server = await startServer();
    h.dataDir = mkdtempSync(path.join(os.tmpdir(), "kiln-repo-int-"));
    h.nc = await connectNats({ servers: h.server.url, name: "repo-test", log: testLog, reconnectForever: false });
    h.ctx = {
      nc: h.nc,
      rpc: new RpcClient(h.nc),
      system: startActorSystem(),
      log: testLog,
      dataDir: h.dataDir,
      nodeId: "repo-test",
      replicas: 1,
    };
    const events = h.nc.subscribe(subjects.eventsAll());
    h.#subs.push(events);
    void (async () => {
      for await (const m of events) {
        try {
          h.events.push(decode(m.data));
        } catch {
          // not an event
        }
      }
    })();
    h.#subs.push(
      serve(h.nc, {
        subject: subjects.rpc(Role.Dispatcher, "job.get"),
        prefixTokens: 3,
        log: testLog,
        handler: async (args) => {
          const found = h.jobs.get((args as { jobId: string }).jobId);
          if (!found) return null;
          return {
            ...found.job,
            code: "building",
            workerId: found.workerId,
            job: found.job,
          };
        },
      })
    );
    h.source = await startSourceRole(h.ctx);
    const id = Identity.create();
    h.admin = new RoleClient<SourceApi>(h.ctx.rpc.withSigner(id), (t) => subjects.rpc(Role.Source, t));
    await h.admin.call("user.add", { name: "admin", pubkey: id.publicKey, admin: true });
    h.adminIdentity = id;
    h.repo = new RoleClient<RepoApi>(h.ctx.rpc, (t) => subjects.rpc(Role.Repo, t));
    h.adminRepo = new RoleClient<RepoApi>(h.ctx.rpc.withSigner(id), (t) => subjects.rpc(Role.Repo, t));
    h.publisherClient = new RoleClient<PublisherApi>(h.ctx.rpc.withSigner(id), (t) => subjects.rpc(Role.Publisher, t));
    if (opts.repo !== false) h.repoRole = await startRepoRole(h.ctx);
    if (opts.publisher) h.publisher = await startPublisherRole(h.ctx, opts.publisher);
    return h;
  }

  async putProject(name: string, body: string): Promise<void> {
    await this.admin.call("project.put-meta", {
      project: name,
      xml: `<project name="${name}"><title/><description/>${body}</project>`,
    });
  }

  async putPackage(project: string, name: string, body = ""): Promise<void> {
    await this.admin.call("package.put-meta", {
      project,
      package: name,
      xml: `<package name="${name}" project="${project}"><title/><description/>${body}</package>`,
    });
  }

  /** Uploads the files and stores them as the result of a job the stand-in dispatcher knows. */
  async storeBuild(o: StoreBuildOptions): Promise<string> {
    const n = ++this.#n;
    const jobId = createHash("md5").update(`${o.project}/${o.repository}/${o.arch}/${o.package}/${n}`).digest("hex");
    const job = {
      ...jobFields({ project: o.project, repository: o.repository, arch: o.arch, package: o.package, srcmd5: jobId }),
      jobId,
      rev: n,
      versrel: o.versrel ?? `1.0-${n}`,
      ...(o.bcnt !== undefined ? { bcnt: o.bcnt } : {}),
      release: `${n}.1`,
      disturl: "",
      subpacks: [],
      path: [],
    } satisfies BuildJob;
    this.jobs.set(jobId, { job, workerId: "test-worker" });
    const meta = Buffer.from(o.meta ?? `${jobId}  ${o.package}\n`);
    const { mkdtemp, writeFile } = await import("node:fs/promises");
    const tmp = await mkdtemp(path.join(os.tmpdir(), "kiln-meta-"));
    await writeFile(path.join(tmp, "_meta"), meta);
    await writeFile(path.join(tmp, "_log"), `log of ${o.package} ${n}\n`);
    const files = [...o.files, path.join(tmp, "_meta"), path.join(tmp, "_log")];
    const uploaded = await uploadAs(
      this.repo,
      files.map((f) => [path.basename(f), f])
    );
    rmSync(tmp, { recursive: true, force: true });
    await this.repo.call("result.put", {
      project: o.project,
      repository: o.repository,
      arch: o.arch,
      package: o.package,
      jobId,
      workerId: "test-worker",
      code: o.code ?? "succeeded",
      files: uploaded,
      startTime: Date.now() - 1000,
      endTime: Date.now(),
    });
    return jobId;
  }

  /** Events seen so far of a type (and project). */
  seen<T extends EventBase>(type: string, project?: string): T[] {
    return this.events.filter((e) => e.type === type && (project === undefined || e.project === project)) as T[];
  }

  async stop(): Promise<void> {
    for (const r of [this.publisher, this.repoRole, this.source]) await r?.stop().catch(() => undefined);
    for (const s of this.#subs) s.unsubscribe();
    stopActorSystem(this.ctx.system);
    await this.nc.close();
    await stopAll([this.server]);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
