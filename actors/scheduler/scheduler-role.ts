/**
 * The scheduler of one architecture: it consumes kiln's events durably, keeps what it needs of
 * every repository that builds for its arch (packages with parsed recipes, build configs, pools
 * along the repository paths, last build results), decides package states and rebuilds with the
 * checker, and hands jobs to the dispatcher.
 *
 * Actors: Scheduler(arch) (root: events and requests) → RepoArch(project, repository), which
 * serialises the checks of one repository. An event is acknowledged once the data it changed is
 * fetched and the affected repositories are marked dirty; a restarted scheduler reloads
 * everything and checks all repositories, so nothing depends on in-memory state surviving.
 */
import { createHash } from "node:crypto";
import { dispatch, spawn, stop, type Ref } from "nact";
import type { Logger } from "pino";
import {
  EVENT_STREAM,
  InvalidInputError,
  NotFoundError,
  Role,
  RoleClient,
  bridgeActor,
  consumeEvents,
  encode,
  ensureEventStream,
  readBlobBytes,
  subjects,
  type BridgedRequest,
  type EventBase,
  type EventConsumer,
} from "../../transport/index.ts";
import { Children, answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { parseMeta } from "../common/build-meta.ts";
import { PackageCode, type BuildJob, type PackageResult, type PoolBinary, type RepoResult } from "../common/model.ts";
import { parseBuildConfig, type BuildConfig } from "../common/prjconf.ts";
import { answerPings, acquireLease, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import { obj, optStr, str } from "../common/validate.ts";
import type { DispatcherApi } from "../dispatcher/protocol.ts";
import type { RepoApi, RepoEvent } from "../repo/protocol.ts";
import type { RepositoryMeta } from "../source/meta-xml.ts";
import type { PackageBuildInfo, SourceApi, SourceEvent } from "../source/protocol.ts";
import { checkRepository, releaseOf, type CheckOutput, type LastBuild, type PackageState } from "./checker.ts";
import { Expander } from "./expansion.ts";
import type { BuildReason, SchedulerApi, SchedulerRequest } from "./protocol.ts";

export interface SchedulerOptions {
  arch: string;
  /** Coalesce events for this long before checking. @default 20 */
  debounceMs?: number;
}

interface Prp {
  project: string;
  repository: string;
  meta: RepositoryMeta;
  packages: Map<string, PackageBuildInfo>;
  config?: BuildConfig;
  path: { project: string; repository: string }[];
  results: Map<string, LastBuild & { metaSha256?: string }>;
  states: Map<string, PackageState>;
  reasons: Map<string, BuildReason>;
  jobs: Map<string, { jobId: string; srcmd5: string }>;
  notReady: Set<string>;
  forceRebuild: Set<string>;
  last?: CheckOutput;
  repoCode: RepoResult["code"];
  dirty: boolean;
  /** A check message is in the RepoArch mailbox; more events need not send another. */
  queued: boolean;
  loaded: boolean;
}

type CheckMsg = { type: "prp.check" } | { type: "prp.reload" };

const prpKey = (p: string, r: string): string => `${p}/${r}`;

const validators: Validators<SchedulerApi> = {
  "results.get": (raw) => {
    const o = obj(raw);
    const r: SchedulerApi["results.get"]["req"] = { project: str(o, "project") };
    const repo = optStr(o, "repository");
    const pkg = optStr(o, "package");
    if (repo !== undefined) r.repository = repo;
    if (pkg !== undefined) r.package = pkg;
    return r;
  },
  "reason.get": (raw) => ({
    project: str(obj(raw), "project"),
    repository: str(obj(raw), "repository"),
    package: str(obj(raw), "package"),
  }),
  "buildinfo.get": (raw) => ({
    project: str(obj(raw), "project"),
    repository: str(obj(raw), "repository"),
    package: str(obj(raw), "package"),
  }),
  "builddepinfo.get": (raw) => ({ project: str(obj(raw), "project"), repository: str(obj(raw), "repository") }),
  "rebuild.request": (raw) => {
    const o = obj(raw);
    const r: SchedulerApi["rebuild.request"]["req"] = { project: str(o, "project") };
    for (const f of ["package", "repository", "code"] as const) {
      const v = optStr(o, f);
      if (v !== undefined) r[f] = v;
    }
    return r;
  },
};

export async function startSchedulerRole(ctx: RoleContext, opts: SchedulerOptions): Promise<RunningRole> {
  const arch = opts.arch;
  const role = `scheduler:${arch}`;
  const log: Logger = ctx.log.child({ role });
  const lease = await acquireLease(ctx, role);
  await ensureEventStream(await ctx.nc.jetstreamManager(), { replicas: ctx.replicas });
  const source = new RoleClient<SourceApi>(ctx.rpc, (t) => subjects.rpc(Role.Source, t));
  const repo = new RoleClient<RepoApi>(ctx.rpc, (t) => subjects.rpc(Role.Repo, t));
  const dispatcher = new RoleClient<DispatcherApi>(ctx.rpc, (t) => subjects.rpc(Role.Dispatcher, t));
  const debounceMs = opts.debounceMs ?? 20;
  const startedAt = Date.now();
  const durable = `sched-${arch.replace(/[^A-Za-z0-9_-]/g, "_")}`;

  const prps = new Map<string, Prp>();
  const pools = new Map<string, PoolBinary[]>();
  const metas = new Map<string, string[]>();
  let busy = 0;

  // ---- loading -----------------------------------------------------------------------------

  const loadPool = async (p: string, r: string): Promise<PoolBinary[]> => {
    const k = prpKey(p, r);
    let pool = pools.get(k);
    if (!pool) {
      pool = await repo.call("pool.get", { project: p, repository: r, arch }, { idempotent: true, timeoutMs: 60_000 });
      pools.set(k, pool);
    }
    return pool;
  };

  const loadMeta = async (sha256: string): Promise<void> => {
    if (metas.has(sha256)) return;
    const text = (await readBlobBytes(repo, sha256, 64 * 1024 * 1024)).toString("utf8");
    metas.set(sha256, parseMeta(text));
  };

  const loadConfig = async (prp: Prp): Promise<void> => {
    const view = await source.call(
      "project.build-config",
      { project: prp.project, repository: prp.repository },
      { idempotent: true }
    );
    prp.config = parseBuildConfig(view.layers, { arch });
    prp.path = view.path;
  };

  const loadResults = async (prp: Prp): Promise<void> => {
    const list = await repo.call(
      "result.list",
      { project: prp.project, repository: prp.repository, arch },
      { idempotent: true }
    );
    prp.results.clear();
    for (const r of list) {
      if (r.metaSha256) await loadMeta(r.metaSha256);
      const lb: LastBuild & { metaSha256?: string } = {
        code: r.code,
        srcmd5: r.verifymd5,
        versrel: r.versrel,
        bcnt: r.bcnt,
      };
      if (r.metaSha256) {
        lb.metaSha256 = r.metaSha256;
        lb.meta = metas.get(r.metaSha256)!;
      }
      prp.results.set(r.package, lb);
    }
  };

  const loadPrp = async (prp: Prp): Promise<void> => {
    await loadConfig(prp);
    const infos = await source.call(
      "project.buildinfo",
      { project: prp.project, repository: prp.repository, arch },
      { idempotent: true, timeoutMs: 120_000 }
    );
    prp.packages = new Map(infos.map((i) => [i.package, i]));
    await loadResults(prp);
    for (const e of prp.path) await loadPool(e.project, e.repository);
    prp.loaded = true;
  };

  /** Repositories of a project that build for this arch, created or updated from its meta. */
  const syncProject = async (project: string): Promise<Prp[]> => {
    let meta;
    try {
      meta = (await source.call("project.get-meta", { project }, { idempotent: true })).meta;
    } catch (err) {
      if ((err as { code?: string }).code !== "ERR_NOT_FOUND") throw err;
      meta = undefined;
    }
    const wanted = new Set<string>();
    const touched: Prp[] = [];
    for (const r of meta?.repositories ?? []) {
      if (!r.archs.includes(arch)) continue;
      const k = prpKey(project, r.name);
      wanted.add(k);
      let prp = prps.get(k);
      if (!prp) {
        prp = {
          project,
          repository: r.name,
          meta: r,
          packages: new Map(),
          path: [{ project, repository: r.name }],
          results: new Map(),
          states: new Map(),
          reasons: new Map(),
          jobs: new Map(),
          notReady: new Set(),
          forceRebuild: new Set(),
          repoCode: "unknown",
          dirty: true,
          queued: false,
          loaded: false,
        };
        prps.set(k, prp);
      }
      prp.meta = r;
      touched.push(prp);
    }
    for (const [k, prp] of prps) {
      if (prp.project === project && !wanted.has(k)) {
        prps.delete(k);
        log.info({ project, repository: prp.repository }, "repository dropped");
      }
    }
    return touched;
  };

  // ---- checking ----------------------------------------------------------------------------

  const dependents = (p: string, r: string): Prp[] =>
    [...prps.values()].filter((x) => x.path.some((e, i) => i > 0 && e.project === p && e.repository === r));

  const markDirty = (prp: Prp): void => {
    prp.dirty = true;
    if (prp.queued) return;
    prp.queued = true;
    dispatch(repoArch.get(prpKey(prp.project, prp.repository)), { type: "prp.check" });
  };

  const submitJob = async (prp: Prp, build: CheckOutput["builds"][number]): Promise<void> => {
    const info = prp.packages.get(build.package)!;
    const config = prp.config!;
    const versrel = `${info.version ?? "0"}-${info.rev}`;
    const last = prp.results.get(build.package);
    const bcnt = last && last.versrel === versrel ? last.bcnt + 1 : 1;
    const body: Omit<BuildJob, "jobId" | "readyTime"> = {
      name: `${prp.project}::${prp.repository}::${build.package}-${info.srcmd5}`,
      project: prp.project,
      repository: prp.repository,
      arch,
      package: build.package,
      srcmd5: info.srcmd5,
      verifymd5: info.verifymd5,
      rev: info.rev,
      revTime: info.revTime,
      specFile: info.specFile!,
      files: info.files,
      versrel,
      bcnt,
      release: releaseOf(config, info.rev, bcnt),
      reason: build.reason.explain,
      needed: build.needed,
      debuginfo: info.flags.debuginfo,
      disturl: `obs://kiln/${prp.project}/${prp.repository}/${info.srcmd5}-${build.package}`,
      subpacks: info.subpacks,
      bdeps: build.bdeps,
      path: prp.path,
      constraints: {
        prjconf: config.constraint,
        recipe: info.constraints,
        ...(info.constraintsFile ? { file: info.constraintsFile } : {}),
      },
      ...(config.macros ? { macros: config.macros } : {}),
    };
    const jobId = createHash("md5").update(encode(body)).digest("hex");
    const job: BuildJob = { ...body, jobId, readyTime: Date.now() };
    await dispatcher.call("job.submit", { job }, { idempotent: true, timeoutMs: 30_000 });
    prp.jobs.set(build.package, { jobId, srcmd5: info.verifymd5 });
    prp.reasons.set(build.package, { ...build.reason, time: job.readyTime });
    prp.forceRebuild.delete(build.package);
    log.info(
      { project: prp.project, repository: prp.repository, package: build.package, reason: build.reason.explain, jobId },
      "job created"
    );
  };

  const check = async (prp: Prp): Promise<void> => {
    if (!prps.has(prpKey(prp.project, prp.repository))) return;
    if (!prp.loaded) await loadPrp(prp);
    if (!prp.dirty) return;
    prp.dirty = false;
    const layers = [];
    for (const e of prp.path) layers.push({ ...e, binaries: await loadPool(e.project, e.repository) });
    for (const l of layers) for (const b of l.binaries) if (b.metaSha256) await loadMeta(b.metaSha256);
    const notReadyElsewhere = new Map<string, Set<string>>();
    for (const e of prp.path.slice(1)) {
      const other = prps.get(prpKey(e.project, e.repository));
      if (other) notReadyElsewhere.set(prpKey(e.project, e.repository), other.notReady);
    }
    const t0 = performance.now();
    const out = checkRepository({
      project: prp.project,
      repository: prp.repository,
      arch,
      rebuild: prp.meta.rebuild ?? "transitive",
      block: prp.meta.block ?? "all",
      config: prp.config!,
      packages: [...prp.packages.values()],
      layers,
      results: prp.results,
      jobs: prp.jobs,
      notReadyElsewhere,
      metaOf: (sha) => metas.get(sha),
      forceRebuild: prp.forceRebuild,
    });
    const ms = performance.now() - t0;
    for (const b of out.builds) await submitJob(prp, b);
    const before = [...prp.notReady].sort().join(",");
    prp.states = out.states;
    prp.notReady = out.notReady;
    prp.repoCode = out.repoCode;
    prp.last = out;
    log.debug(
      { project: prp.project, repository: prp.repository, ms: Math.round(ms), builds: out.builds.length },
      "repository checked"
    );
    if (before !== [...prp.notReady].sort().join(","))
      for (const d of dependents(prp.project, prp.repository)) markDirty(d);
  };

  const repoArch = new Children<CheckMsg>((name, key) =>
    spawn(
      root,
      async (_s: undefined, msg: CheckMsg) => {
        const prp = prps.get(key);
        if (!prp) return undefined;
        busy++;
        try {
          switch (msg.type) {
            case "prp.reload":
              prp.loaded = false;
              prp.dirty = true;
              await check(prp);
              break;
            case "prp.check":
              if (debounceMs > 0) await new Promise((r) => setTimeout(r, debounceMs));
              prp.queued = false;
              await check(prp);
              break;
            default:
              assertNever(msg);
          }
        } catch (err) {
          log.warn({ err, project: prp.project, repository: prp.repository }, "repository check failed, will retry");
          setTimeout(() => markDirty(prp), 1000).unref();
        } finally {
          busy--;
        }
        return undefined;
      },
      name
    )
  );

  // ---- events ------------------------------------------------------------------------------

  const forProject = (project: string): Prp[] => [...prps.values()].filter((p) => p.project === project);

  const onEvent = async (e: SourceEvent | RepoEvent | EventBase): Promise<void> => {
    const ev = e as SourceEvent | RepoEvent;
    switch (ev.type) {
      case "project.meta-changed": {
        const touched = await syncProject(ev.project);
        for (const prp of touched) {
          prp.loaded = false;
          markDirty(prp);
        }
        for (const prp of prps.values()) if (prp.path.some((x) => x.project === ev.project)) markDirty(prp);
        return;
      }
      case "project.config-changed":
        for (const prp of prps.values()) {
          if (prp.project === ev.project || prp.path.some((x) => x.project === ev.project)) {
            prp.loaded = false;
            markDirty(prp);
          }
        }
        return;
      case "project.deleted":
        for (const prp of forProject(ev.project)) prps.delete(prpKey(prp.project, prp.repository));
        return;
      case "source.committed":
      case "package.meta-changed":
        for (const prp of forProject(ev.project)) {
          if (!prp.loaded) {
            markDirty(prp);
            continue;
          }
          const info = await source.call(
            "package.buildinfo",
            { project: ev.project, package: ev.package, repository: prp.repository, arch },
            { idempotent: true }
          );
          prp.packages.set(ev.package, info);
          markDirty(prp);
        }
        return;
      case "package.deleted":
        for (const prp of forProject(ev.project)) {
          prp.packages.delete(ev.package);
          markDirty(prp);
        }
        return;
      case "repo.built": {
        if (ev.arch !== arch) return;
        const prp = prps.get(prpKey(ev.project, ev.repository));
        if (!prp) return;
        if (ev.metaSha256) await loadMeta(ev.metaSha256);
        const lb: LastBuild & { metaSha256?: string } = {
          code: ev.code,
          srcmd5: "",
          versrel: ev.versrel,
          bcnt: ev.bcnt,
        };
        const info = prp.packages.get(ev.package);
        lb.srcmd5 = ev.srcmd5 === info?.srcmd5 ? info.verifymd5 : ev.srcmd5;
        if (ev.metaSha256) {
          lb.metaSha256 = ev.metaSha256;
          lb.meta = metas.get(ev.metaSha256)!;
        }
        prp.results.set(ev.package, lb);
        if (prp.jobs.get(ev.package)?.jobId === ev.jobId) prp.jobs.delete(ev.package);
        markDirty(prp);
        return;
      }
      case "repo.pool-changed": {
        if (ev.arch !== arch) return;
        const k = prpKey(ev.project, ev.repository);
        const pool = pools.get(k);
        if (pool) {
          const removed = new Set(ev.removed.map((r) => r.name));
          const next = pool.filter((b) => !removed.has(b.name));
          next.push(...ev.added);
          pools.set(k, next);
        }
        for (const b of ev.added) if (b.metaSha256) await loadMeta(b.metaSha256);
        const own = prps.get(k);
        if (own) markDirty(own);
        for (const d of dependents(ev.project, ev.repository)) markDirty(d);
        return;
      }
      default:
        return;
    }
  };

  // ---- requests ----------------------------------------------------------------------------

  const requirePrp = (project: string, repository: string): Prp => {
    const prp = prps.get(prpKey(project, repository));
    if (!prp) throw new NotFoundError(`no repository ${project}/${repository} builds for ${arch}`);
    return prp;
  };

  const handle = async (msg: SchedulerRequest): Promise<void> => {
    switch (msg.type) {
      case "results.get":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          const list = forProject(a.project).filter((p) => !a.repository || p.repository === a.repository);
          const jobs = list.some((p) => p.jobs.size)
            ? new Map(
                (await dispatcher.call("job.list", { project: a.project, arch }, { idempotent: true })).map((j) => [
                  j.jobId,
                  j,
                ])
              )
            : new Map();
          let pending = 0;
          try {
            const info = await (await ctx.nc.jetstreamManager()).consumers.info(EVENT_STREAM, durable);
            pending = info.num_pending + info.num_ack_pending;
          } catch {
            pending = 1;
          }
          return list
            .sort((x, y) => (x.repository < y.repository ? -1 : 1))
            .map((prp): RepoResult => {
              const packages: PackageResult[] = [...prp.packages.keys()]
                .filter((k) => !a.package || k === a.package)
                .sort()
                .map((k) => {
                  const st = prp.states.get(k) ?? { code: PackageCode.Unknown, details: "" };
                  let { code, details } = st;
                  const job = prp.jobs.get(k);
                  if (code === PackageCode.Scheduled && job) {
                    const j = jobs.get(job.jobId);
                    if (!j) code = PackageCode.Finished;
                    else if (j.code === "building") {
                      code = PackageCode.Building;
                      details = `building on ${j.workerId}`;
                    } else if (j.code === "dispatching") code = PackageCode.Dispatching;
                    else if (j.details) details = j.details;
                  }
                  return { project: prp.project, repository: prp.repository, arch, package: k, code, details };
                });
              return {
                project: prp.project,
                repository: prp.repository,
                arch,
                code: prp.repoCode,
                dirty: pending > 0 || prp.dirty || prp.queued || !prp.loaded || busy > 0,
                packages,
              };
            });
        });
      case "reason.get":
        return answer(
          msg.replyTo,
          () => requirePrp(msg.args.project, msg.args.repository).reasons.get(msg.args.package) ?? null
        );
      case "buildinfo.get":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          const prp = requirePrp(a.project, a.repository);
          const info = prp.packages.get(a.package);
          if (!info) throw new NotFoundError(`no package ${a.package} in ${a.project}`);
          const layers = [];
          for (const e of prp.path) layers.push({ ...e, binaries: await loadPool(e.project, e.repository) });
          const exp = new Expander(layers, prp.config!);
          const st = prp.states.get(a.package) ?? { code: PackageCode.Unknown, details: "" };
          const e = exp.edeps(info.buildRequires, info.subpacks);
          const view = {
            project: a.project,
            repository: a.repository,
            arch,
            package: a.package,
            code: st.code,
            details: st.details,
            srcmd5: info.srcmd5,
            versrel: `${info.version ?? "0"}-${info.rev}`,
            ...(info.specFile ? { specFile: info.specFile } : {}),
            bdeps: [] as BuildJob["bdeps"],
          };
          if (!e.ok) return { ...view, error: e.error };
          const inst = exp.installSet(e.packages);
          if (!inst.ok) return { ...view, error: inst.error };
          view.bdeps = inst.packages.map((name) => {
            const lb = exp.binary(name)!;
            return {
              name,
              version: lb.binary.version,
              release: lb.binary.release,
              arch: lb.binary.arch,
              project: lb.project,
              repository: lb.repository,
              package: lb.binary.package,
              filename: lb.binary.filename,
              sha256: lb.binary.sha256,
              hdrmd5: lb.binary.hdrmd5,
              size: lb.binary.size,
              ...(inst.notmeta?.has(name) ? { notmeta: true } : {}),
              ...(inst.preinstall?.has(name) ? { preinstall: true } : {}),
            };
          });
          return view;
        });
      case "builddepinfo.get":
        return answer(msg.replyTo, () => {
          const prp = requirePrp(msg.args.project, msg.args.repository);
          const deps = prp.last?.pkgdeps ?? new Map<string, string[]>();
          const rev = new Map<string, string[]>();
          for (const [p, ds] of deps) for (const d of ds) rev.set(d, [...(rev.get(d) ?? []), p]);
          return {
            project: prp.project,
            repository: prp.repository,
            arch,
            packages: [...prp.packages.values()]
              .sort((x, y) => (x.package < y.package ? -1 : 1))
              .map((i) => ({
                package: i.package,
                source: i.package,
                pkgdeps: deps.get(i.package) ?? [],
                subpkgs: i.subpacks,
                revdeps: (rev.get(i.package) ?? []).sort(),
              })),
            cycles: prp.last?.cycles ?? [],
          };
        });
      case "rebuild.request":
        return answer(msg.replyTo, () => {
          const a = msg.args;
          let n = 0;
          for (const prp of forProject(a.project)) {
            if (a.repository && prp.repository !== a.repository) continue;
            for (const k of prp.packages.keys()) {
              if (a.package && k !== a.package) continue;
              if (a.code && prp.states.get(k)?.code !== a.code) continue;
              prp.forceRebuild.add(k);
              prp.jobs.delete(k);
              n++;
            }
            markDirty(prp);
          }
          if (a.package && n === 0 && !a.code)
            throw new InvalidInputError(`no package ${a.package} in ${a.project} for ${arch}`);
          return { packages: n };
        });
      default:
        assertNever(msg);
    }
  };

  const root: Ref<unknown> = spawn(
    ctx.system,
    (_s: undefined, msg: BridgedRequest | { type: "children.sweep" }) => {
      if (msg.type === "children.sweep") return undefined;
      const req = validated(validators, msg as BridgedRequest);
      if (req) void handle(req);
      return undefined;
    },
    `scheduler-${arch.replace(/[^a-zA-Z0-9_-]/g, "_")}`
  );

  // Initial load: every repository of every project that builds for this arch.
  for (const p of await source.call("project.list", {}, { idempotent: true, timeoutMs: 60_000 })) {
    for (const prp of await syncProject(p.name)) markDirty(prp);
  }
  const consumer: EventConsumer = await consumeEvents<SourceEvent | RepoEvent>(ctx.nc, {
    durable,
    filterSubject: subjects.eventsAll(),
    handler: onEvent,
    log,
  });
  const sub = bridgeActor(ctx.nc, root as unknown as Ref<BridgedRequest>, {
    subject: subjects.schedAll(arch),
    queue: `sched-${arch}`,
    prefixTokens: 4,
    log,
  });
  const stopPing = answerPings(ctx.nc, () =>
    pingInfo(role, ctx.nodeId, startedAt, {
      repositories: prps.size,
      busy,
      dirty: [...prps.values()].filter((p) => p.dirty).length,
    })
  );
  log.info({ repositories: prps.size }, "scheduler started");
  return {
    role,
    async stop(): Promise<void> {
      stopPing();
      await sub.drain();
      await consumer.stop();
      for (const k of [...repoArch.keys()]) stop(repoArch.get(k));
      await lease.release();
      log.info({}, "scheduler stopped");
    },
  };
}
