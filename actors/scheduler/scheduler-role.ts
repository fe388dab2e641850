/**
 * The scheduler of one architecture. It consumes kiln's events durably, keeps for every
 * repository that builds for its arch an {@link IncrementalChecker} (packages with parsed recipes,
 * the build config, the pools along the repository path, last build results, jobs), and hands
 * the builds the checker decides on to the dispatcher.
 *
 * Actors: Scheduler(arch) (root: requests) → RepoArch(project, repository), which serialises the
 * loading and checking of one repository. An event is acknowledged once the data it changed is
 * applied and the affected repositories are marked dirty; a restarted scheduler reloads every
 * repository and checks it, so nothing depends on in-memory state surviving a crash.
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
  errorEnvelope,
  makeEvent,
  publishEvent,
  readBlobBytes,
  subjects,
  type BridgedRequest,
  type EventBase,
  type EventConsumer,
} from "../../transport/index.ts";
import { Outbox, RoleStore, keys, prefixRange, type Key, type KeyPart } from "../../storage/index.ts";
import { Children, answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { parseMeta } from "../common/build-meta.ts";
import {
  BuildResultCode,
  PackageCode,
  RepoCode,
  type BuildJob,
  type PackageResult,
  type PoolBinary,
  type RepoResult,
} from "../common/model.ts";
import { parseBuildConfig } from "../common/prjconf.ts";
import { answerPings, acquireLease, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import { obj, optStr, str } from "../common/validate.ts";
import type { DispatcherApi } from "../dispatcher/protocol.ts";
import { listAllJobs } from "../dispatcher/job-pages.ts";
import type { RepoStateChangedEvent } from "../publisher/protocol.ts";
import type { RepoApi, RepoEvent } from "../repo/protocol.ts";
import { AccessNeed } from "../source/access.ts";
import { AccessGate } from "../source/access-gate.ts";
import type { RepositoryMeta } from "../source/meta-xml.ts";
import type { PackageBuildInfo, SourceApi, SourceEvent } from "../source/protocol.ts";
import {
  IncrementalChecker,
  releaseOf,
  type LastBuild,
  type NeededBuild,
  type SignatureDigests,
  type UnwantedJob,
} from "./checker.ts";
import type { BuildInfoView, BuildReason, SchedulerApi, SchedulerRequest } from "./protocol.ts";

export interface SchedulerOptions {
  arch: string;
  /** Coalesce events for this long before checking. @default 20 */
  debounceMs?: number;
}

interface Prp {
  project: string;
  repository: string;
  meta: RepositoryMeta;
  checker?: IncrementalChecker;
  path: { project: string; repository: string }[];
  repoCode: RepoResult["code"];
  /** Why the repository is `broken`, when it is. */
  repoDetails?: string;
  /**
   * Set while a repository of the path does not exist: the repository cannot be read (OBS's
   * `repository 'P/R' is unavailable`); it is read again at the next event.
   */
  unavailable?: string;
  /** A check is running (OBS shows `scheduling` meanwhile). */
  checking?: boolean;
  /** Something changed since the last check. */
  dirty: boolean;
  /** A check message is in the RepoArch mailbox; more events need not send another. */
  queued: boolean;
  /** The whole repository must be read again (new repository, new path, new config). */
  reload: boolean;
  /**
   * Set while `loadPrp` reads the repository: the events that arrive meanwhile, to apply to the
   * new checker in order once it is read (its snapshot may or may not include them; each update
   * sets state, so applying one twice changes nothing).
   */
  pending?: ((checker: IncrementalChecker) => Promise<void> | void)[];
  lastCheckMs?: number;
  /** The checker whose expansion filters are being made in idle time. */
  filtering?: IncrementalChecker;
}

type CheckMsg = { type: "prp.check" };

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

/** What a job recorded when it was created: the basis of the next rebuild decision. */
interface JobSignature {
  depsig: string[];
  digests: SignatureDigests;
}

export async function startSchedulerRole(ctx: RoleContext, opts: SchedulerOptions): Promise<RunningRole> {
  const arch = opts.arch;
  const role = `scheduler:${arch}`;
  const log: Logger = ctx.log.child({ role });
  const lease = await acquireLease(ctx, role);
  await ensureEventStream(await ctx.nc.jetstreamManager(), { replicas: ctx.replicas });
  const js = ctx.nc.jetstream();
  const source = new RoleClient<SourceApi>(ctx.rpc, (t) => subjects.rpc(Role.Source, t));
  const repo = new RoleClient<RepoApi>(ctx.rpc, (t) => subjects.rpc(Role.Repo, t));
  const dispatcher = new RoleClient<DispatcherApi>(ctx.rpc, (t) => subjects.rpc(Role.Dispatcher, t));
  const debounceMs = opts.debounceMs ?? 20;
  const startedAt = Date.now();
  const durable = `sched-${arch.replace(/[^A-Za-z0-9_-]/g, "_")}`;

  const store = RoleStore.open({ path: `${ctx.dataDir}/scheduler-${arch.replace(/[^A-Za-z0-9_-]/g, "_")}/db`, log });
  // Repository state changes that a crash or a NATS hiccup kept from the stream go out first.
  const outbox = new Outbox<RepoStateChangedEvent>(store, (e) => publishEvent(js, e), log);
  await outbox.flush();
  const prps = new Map<string, Prp>();
  /** Meta texts of builds, by blob id: shared by every repository (the same build is in many paths). */
  const metas = new Map<string, string[]>();
  let busy = 0;

  // ---- loading -----------------------------------------------------------------------------

  const loadMeta = async (sha256: string): Promise<string[]> => {
    let m = metas.get(sha256);
    if (!m) {
      m = parseMeta((await readBlobBytes(repo, sha256, 64 * 1024 * 1024)).toString("utf8"));
      metas.set(sha256, m);
    }
    return m;
  };

  /** A meta as {@link loadMeta}; one that cannot be read counts as none (the header md5 stands in). */
  const loadMetaOrNone = async (sha256: string): Promise<void> => {
    try {
      await loadMeta(sha256);
    } catch (err) {
      log.warn({ err, meta: sha256 }, "build meta unreadable");
      metas.set(sha256, []);
    }
  };

  /**
   * Results without a recorded signature (made before this scheduler's store existed) are
   * decided by comparing metas, as OBS does: then, and only then, meta texts are loaded.
   */
  let needMetas = false;

  /** The last build of a package as the repo role reports it, with what its job recorded. */
  const lastBuildOf = async (r: {
    code: LastBuild["code"];
    jobId: string;
    verifymd5: string;
    versrel: string;
    bcnt: number;
    metaSha256?: string;
  }): Promise<LastBuild> => {
    const lb: LastBuild = { code: r.code, jobId: r.jobId, srcmd5: r.verifymd5, versrel: r.versrel, bcnt: r.bcnt };
    if (r.metaSha256) lb.metaSha256 = r.metaSha256;
    const sig = store.get<JobSignature>(keys.jobSignature(r.jobId));
    if (sig) lb.digests = sig.digests;
    else if (r.metaSha256) {
      needMetas = true;
      lb.meta = await loadMeta(r.metaSha256);
    }
    return lb;
  };

  // ---- job signatures ----------------------------------------------------------------------
  // A signature is needed while a result may name its job: the job of a package's current result,
  // and jobs queued or running. The repo role stores a result only for a job the dispatcher still
  // has, one prpa at a time, so once a package has a result, none of its jobs submitted before
  // that one can be named by a later result: a new result drops them. A job the check cancels,
  // or a new job supersedes, loses its signature once the dispatcher has let it go. Deleting a package, repository or
  // project drops theirs; a wipe keeps only a live job's; every load (the start among them) drops
  // what neither a current result nor a live job names: jobs cancelled while the scheduler was
  // down, and a signature whose job a crash kept from being submitted.

  /** Removes the index entries (`keys.jobSignatureIndex`) and their signatures; inside transact. */
  const dropIndexed = (entries: Iterable<Key>): number => {
    let n = 0;
    for (const k of entries) {
      void store.db.remove(keys.jobSignature(k[4] as string));
      void store.db.remove(k);
      n++;
    }
    return n;
  };

  /** The index entries of a package, with their submission counters. */
  const indexOf = (project: string, repository: string, pkg: string): { key: Key; value: number }[] => [
    ...store.scan<number>(keys.jobSignatureIndexOf(project, repository, pkg)),
  ];

  /** After a result of `jobId`: the package's jobs submitted before it are no longer needed. */
  const dropOlderSignatures = async (
    project: string,
    repository: string,
    pkg: string,
    jobId: string
  ): Promise<void> => {
    const n = await store.transact(() => {
      const entries = indexOf(project, repository, pkg);
      const seq = entries.find((e) => e.key[4] === jobId)?.value;
      // A job not in the index (its signature was dropped meanwhile) orders nothing: the next load prunes.
      if (seq === undefined) return 0;
      return dropIndexed(entries.filter((e) => e.value < seq).map((e) => e.key));
    });
    if (n) log.debug({ project, repository, package: pkg, jobId, dropped: n }, "older job signatures dropped");
  };

  /** Jobs the dispatcher has let go without a result (cancelled, superseded): no result can name them. */
  const dropJobSignatures = async (
    project: string,
    repository: string,
    jobs: readonly { package: string; jobId: string }[]
  ): Promise<void> => {
    if (!jobs.length) return;
    await store.transact(() =>
      dropIndexed(jobs.map((j) => keys.jobSignatureIndex(project, repository, j.package, j.jobId)))
    );
  };

  /** Signatures and reasons of a project, repository or package that is gone from this arch. */
  const dropSignaturesOf = async (project: string, repository?: string, pkg?: string): Promise<void> => {
    const n = await store.transact(() => {
      if (repository !== undefined && pkg !== undefined)
        void store.db.remove(keys.buildReason(project, repository, pkg));
      else for (const k of [...store.scanKeys(keys.buildReasonsOf(project, repository))]) void store.db.remove(k);
      return dropIndexed([...store.scanKeys(keys.jobSignatureIndexOf(project, repository, pkg))]);
    });
    if (n) log.debug({ project, repository, package: pkg, dropped: n }, "job signatures dropped");
  };

  /**
   * At a load: keeps the signatures of the jobs the repository's results name and of its live
   * jobs, drops the rest. A signature from before the index that one of them needs is indexed
   * (counter 0: older than every job submitted since).
   */
  const pruneAtLoad = async (
    project: string,
    repository: string,
    needed: readonly { package: string; jobId: string }[]
  ): Promise<void> => {
    const counts = await store.transact(() => {
      const keep = new Set(needed.map((x) => x.jobId));
      const indexed = new Set<string>();
      const drop: Key[] = [];
      for (const k of store.scanKeys(keys.jobSignatureIndexOf(project, repository))) {
        if (keep.has(k[4] as string)) indexed.add(k[4] as string);
        else drop.push(k);
      }
      let adopted = 0;
      for (const x of needed) {
        if (indexed.has(x.jobId) || store.get(keys.jobSignature(x.jobId)) === undefined) continue;
        void store.db.put(keys.jobSignatureIndex(project, repository, x.package, x.jobId), 0);
        indexed.add(x.jobId);
        adopted++;
      }
      return { dropped: dropIndexed(drop), adopted };
    });
    if (counts.dropped || counts.adopted) log.info({ project, repository, ...counts }, "job signatures pruned");
  };

  /**
   * Removes the keys under a prefix that `pick` names, a page at a time: a range is not read while
   * it changes, and a store that never pruned may hold millions. Inside transact.
   */
  const removeWhere = (prefix: Key, pick: (k: Key) => boolean): number => {
    const PAGE = 10_000;
    const end = prefixRange(prefix).end;
    let start: (KeyPart | Buffer)[] = prefix;
    let n = 0;
    for (;;) {
      const page = [...(store.db.getKeys({ start, end, limit: PAGE } as never) as Iterable<Key>)];
      const picked = page.filter(pick);
      for (const k of picked) void store.db.remove(k);
      n += picked.length;
      if (page.length < PAGE) return n;
      // From the page's last key on: removed, the range starts after it; kept, it is read again.
      start = page[page.length - 1]!;
    }
  };

  /** The repositories known at start; undefined until they are. */
  let atStart: readonly string[] | undefined = undefined;
  const loadedOnce = new Set<string>();
  /** The sweep, once started: the store closes after it. */
  let sweep: Promise<void> | undefined;

  /**
   * Once every repository known at start has been loaded or dropped (a loaded one has indexed the
   * signatures from before the index that it needs): drops signatures no index names, and
   * signatures and reasons of repositories that no longer build for this arch. A repository that
   * stays unavailable puts this off to a later start. One transaction: a job submitted meanwhile
   * cannot fall between the two scans.
   */
  const sweepOnceLoaded = (): void => {
    if (sweep || !atStart?.every((k) => loadedOnce.has(k) || !prps.has(k))) return;
    sweep = store
      .transact(() => {
        const here = (k: Key): boolean => prps.has(prpKey(k[1] as string, k[2] as string));
        const indexed = new Set<string>();
        for (const k of store.scanKeys(keys.jobSignatureIndexAll())) if (here(k)) indexed.add(k[4] as string);
        return {
          signatures: removeWhere(keys.jobSignaturesAll(), (k) => !indexed.has(k[1] as string)),
          ofGoneRepositories: removeWhere(keys.jobSignatureIndexAll(), (k) => !here(k)),
          reasons: removeWhere(keys.buildReasonsAll(), (k) => !here(k)),
        };
      })
      .then(
        (counts) => {
          if (counts.signatures || counts.reasons) log.info(counts, "job signatures swept");
        },
        (err: unknown) => log.warn({ err }, "job signature sweep failed, next start again")
      );
  };

  const loadPool = async (p: string, r: string): Promise<PoolBinary[]> => {
    const pool: PoolBinary[] = [];
    let after: string | undefined;
    // In pages: the pool of a big repository does not fit one NATS message.
    do {
      const page = await repo.call(
        "pool.page",
        { project: p, repository: r, arch, ...(after !== undefined ? { after } : {}) },
        { idempotent: true, timeoutMs: 120_000 }
      );
      pool.push(...page.binaries);
      after = page.next;
    } while (after !== undefined);
    if (needMetas) for (const b of pool) if (b.metaSha256) await loadMeta(b.metaSha256);
    return pool;
  };

  /** Reads a repository completely and builds its checker. */
  const loadPrp = async (prp: Prp): Promise<void> => {
    // Cleared first: a meta or config change during the load asks for another.
    prp.reload = false;
    const pending: NonNullable<Prp["pending"]> = [];
    prp.pending = pending;
    try {
      const checker = await readPrp(prp);
      if (typeof checker === "string") {
        prp.unavailable = checker;
        // Read again at the next event (a path project created or changed sends one).
        prp.reload = true;
        return;
      }
      prp.unavailable = undefined;
      for (let update = pending.shift(); update; update = pending.shift()) await update(checker);
      prp.checker = checker;
      loadedOnce.add(prpKey(prp.project, prp.repository));
      sweepOnceLoaded();
    } finally {
      prp.pending = undefined;
    }
  };

  /** The repository's checker, freshly read; or why it cannot be read. */
  const readPrp = async (prp: Prp): Promise<IncrementalChecker | string> => {
    const view = await source.call(
      "project.build-config",
      { project: prp.project, repository: prp.repository },
      { idempotent: true }
    );
    const config = parseBuildConfig(view.layers, { arch });
    prp.path = view.path;
    const pathRepos = new Map<string, RepositoryMeta[] | undefined>();
    for (const e of view.path.slice(1)) {
      if (!pathRepos.has(e.project)) pathRepos.set(e.project, await repositoriesOf(e.project));
      if (!pathRepos.get(e.project)?.some((r) => r.name === e.repository))
        return `repository '${e.project}/${e.repository}' is unavailable`;
    }
    const layers = [];
    for (const e of view.path) layers.push({ ...e, binaries: await loadPool(e.project, e.repository) });
    const checker: IncrementalChecker = new IncrementalChecker({
      project: prp.project,
      repository: prp.repository,
      arch,
      rebuild: prp.meta.rebuild ?? "transitive",
      block: prp.meta.block ?? "all",
      config,
      layers,
      metaOf: (sha) => metas.get(sha),
      // LMDB reads are synchronous: the full signature is read only to name what changed.
      signatureOf: (pkg) => {
        const jobId = checker.result(pkg)?.jobId;
        return jobId ? store.get<JobSignature>(keys.jobSignature(jobId))?.depsig : undefined;
      },
    });
    const infos = await source.call(
      "project.buildinfo",
      { project: prp.project, repository: prp.repository, arch },
      { idempotent: true, timeoutMs: 300_000 }
    );
    for (const i of infos) checker.upsertPackage(i);
    // Jobs before results: a job that ends in between is in one list or the other (the dispatcher
    // forgets a job only after its result is stored), so the pruning below keeps every signature
    // a result may still name. No job is submitted meanwhile: this repository's checks wait.
    const jobs = await listAllJobs(dispatcher, { project: prp.project, repository: prp.repository, arch });
    const results = await repo.call(
      "result.list",
      { project: prp.project, repository: prp.repository, arch },
      { idempotent: true, timeoutMs: 120_000 }
    );
    for (const r of results) checker.setResult(r.package, await lastBuildOf(r));
    // Every arch's build counters (OBS relsync); later ones come with repo.built of any arch.
    const relsync = await repo.call(
      "relsync.get",
      { project: prp.project, repository: prp.repository },
      { idempotent: true, timeoutMs: 120_000 }
    );
    for (const e of relsync) checker.raiseRelsync(e.package, e.versrel, e.bcnt);
    // Results decided by metas need the producers' metas of the pools too.
    if (needMetas) for (const l of layers) for (const b of l.binaries) if (b.metaSha256) await loadMeta(b.metaSha256);
    for (const j of jobs) checker.setJob(j.package, { jobId: j.jobId, srcmd5: j.srcmd5 });
    await pruneAtLoad(prp.project, prp.repository, [...results, ...jobs]);
    for (const e of view.path.slice(1)) {
      const other = prps.get(prpKey(e.project, e.repository));
      if (other?.checker) checker.setNotReadyElsewhere(prpKey(e.project, e.repository), other.checker.notReady());
    }
    return checker;
  };

  /**
   * Applies an event's update to the repository's checker; while the repository is being read,
   * to the new checker once it is read. Not at all when a read is still due: it reads the update.
   */
  const update = async (prp: Prp, fn: (checker: IncrementalChecker) => Promise<void> | void): Promise<void> => {
    if (prp.pending) prp.pending.push(fn);
    else if (prp.checker && !prp.reload) await fn(prp.checker);
    markDirty(prp);
  };

  /** A project's repositories; undefined when the project does not exist. */
  const repositoriesOf = async (project: string): Promise<RepositoryMeta[] | undefined> => {
    try {
      return (await source.call("project.get-meta", { project }, { idempotent: true })).meta.repositories;
    } catch (err) {
      if ((err as { code?: string }).code !== "ERR_NOT_FOUND") throw err;
      return undefined;
    }
  };

  /** Repositories of a project that build for this arch, created or updated from its meta. */
  const syncProject = async (project: string): Promise<Prp[]> => {
    let meta;
    try {
      meta = (await source.call("project.get-meta", { project }, { idempotent: true })).meta;
    } catch (err) {
      if ((err as { code?: string }).code !== "ERR_NOT_FOUND") throw err;
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
          path: [{ project, repository: r.name }],
          repoCode: RepoCode.Unknown,
          dirty: true,
          queued: false,
          reload: true,
        };
        prps.set(k, prp);
      } else {
        const pathChanged = JSON.stringify(prp.meta.paths) !== JSON.stringify(r.paths);
        prp.meta = r;
        if (pathChanged) prp.reload = true;
        prp.checker?.setModes(r.rebuild ?? "transitive", r.block ?? "all");
      }
      touched.push(prp);
    }
    for (const [k, prp] of prps) {
      if (prp.project === project && !wanted.has(k)) {
        // Cancelled first: should that fail, the event is handled again and finds it still here.
        await cancelRepository(project, prp.repository);
        prps.delete(k);
        await dropSignaturesOf(project, prp.repository);
        sweepOnceLoaded();
        log.info({ project, repository: prp.repository }, "repository dropped");
      }
    }
    return touched;
  };

  // ---- checking ----------------------------------------------------------------------------

  /** Repositories whose path contains P/R after themselves. */
  const dependents = (p: string, r: string): Prp[] =>
    [...prps.values()].filter((x) => x.path.some((e, i) => i > 0 && e.project === p && e.repository === r));

  const markDirty = (prp: Prp): void => {
    prp.dirty = true;
    if (prp.queued) return;
    prp.queued = true;
    dispatch(repoArch.get(prpKey(prp.project, prp.repository)), { type: "prp.check" });
  };

  /**
   * The versrel, build counter and release a job of the package's current sources gets. The
   * counter is OBS's `nextbcnt`: one more than that of the package's last successful build of
   * the same versrel, from its build history, to which failed and unchanged builds add nothing,
   * and at least the highest counter any arch's build of that versrel got (OBS relsync).
   */
  const countersOf = async (
    prp: Prp,
    checker: IncrementalChecker,
    info: PackageBuildInfo
  ): Promise<{ versrel: string; bcnt: number; release: string }> => {
    const versrel = `${info.version ?? "0"}-${info.rev}`;
    const last = checker.result(info.package);
    let bcnt: number;
    // The last result, when successful, is the history's newest entry: no need to ask.
    if (last?.code === BuildResultCode.Succeeded && last.versrel === versrel) bcnt = last.bcnt + 1;
    else {
      // A versrel's entries are the newest ones (the revision only grows): the last few suffice.
      const history = await repo.call(
        "history.build",
        { project: prp.project, repository: prp.repository, arch, package: info.package, limit: 100 },
        { idempotent: true }
      );
      const h = history.findLast((e) => e.code === BuildResultCode.Succeeded && e.versrel === versrel);
      bcnt = (h?.bcnt ?? 0) + 1;
    }
    // Never below what another arch's build of this versrel got (OBS relsync).
    bcnt = Math.max(bcnt, checker.relsyncMax(info.package, versrel));
    return { versrel, bcnt, release: releaseOf(checker.expansion.config, info.rev, bcnt) };
  };

  const submitJob = async (prp: Prp, checker: IncrementalChecker, build: NeededBuild): Promise<void> => {
    const info = checker.packageInfo(build.package)!;
    const config = checker.expansion.config;
    const { versrel, bcnt, release } = await countersOf(prp, checker, info);
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
      release,
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
      ...(info.buildtimeServices?.length ? { buildtimeServices: info.buildtimeServices } : {}),
      // The worker reads the build-related ones (logidlelimit, buildtimeout, hooks, nohooks).
      ...(config.buildFlags.length ? { buildFlags: config.buildFlags } : {}),
    };
    const readyTime = Date.now();
    // With the ready time, as OBS's job id (the md5 of the job file, which carries it): a rebuild
    // whose content equals an earlier job's (a failed build keeps the counter) is a new job.
    const jobId = createHash("md5")
      .update(encode({ ...body, readyTime }))
      .digest("hex");
    const job: BuildJob = { ...body, jobId, readyTime };
    // Recorded before the job exists anywhere else: its result is always compared against it.
    // The reason (with the changed dependencies) is kept as OBS keeps a package's `reason` file:
    // `kiln reason` reads it, also after a restart.
    await store.transact(() => {
      void store.db.put(keys.jobSignature(jobId), {
        depsig: build.depsig,
        digests: build.digests,
      } satisfies JobSignature);
      // Indexed with it, so that the package's next result can drop it.
      void store.db.put(
        keys.jobSignatureIndex(prp.project, prp.repository, build.package, jobId),
        store.nextSeq("jobsig")
      );
      void store.db.put(keys.buildReason(prp.project, prp.repository, build.package), {
        ...build.reason,
        time: job.readyTime,
      } satisfies BuildReason);
    });
    const submitted = await dispatcher.call("job.submit", { job }, { idempotent: true, timeoutMs: 30_000 });
    checker.setJob(build.package, { jobId, srcmd5: info.verifymd5 });
    // The job it superseded ends without a result, as a cancelled one.
    if (submitted.superseded !== undefined) {
      await dropJobSignatures(prp.project, prp.repository, [{ package: build.package, jobId: submitted.superseded }]);
    }
    log.info(
      { project: prp.project, repository: prp.repository, package: build.package, reason: build.reason.explain, jobId },
      "job created"
    );
  };

  /**
   * Cancels jobs the check no longer wants (OBS `killunwantedjobs`): through the dispatcher's
   * `job.discard`, so they end without a result, as OBS's `killjob` purges them.
   */
  const cancelJobs = async (prp: Prp, checker: IncrementalChecker, unwanted: readonly UnwantedJob[]): Promise<void> => {
    for (const evenRunning of [true, false]) {
      const list = unwanted.filter((u) => u.evenRunning === evenRunning);
      if (!list.length) continue;
      const r = await dispatcher.call(
        "job.discard",
        {
          project: prp.project,
          repository: prp.repository,
          arch,
          packages: list.map((u) => u.package),
          ...(evenRunning ? {} : { onlyQueued: true }),
        },
        { idempotent: true, timeoutMs: 30_000 }
      );
      const gone = new Set(r.jobIds);
      const cancelled = list.filter((u) => gone.has(u.jobId));
      for (const u of cancelled) {
        if (checker.job(u.package)?.jobId === u.jobId) checker.setJob(u.package, undefined);
        log.info(
          { project: prp.project, repository: prp.repository, package: u.package, jobId: u.jobId },
          "job cancelled"
        );
      }
      // The dispatcher no longer has these jobs, so no result can name them from now on. (One
      // the repo role accepted just before is decided from its meta, as a build from before
      // signatures were recorded.)
      await dropJobSignatures(prp.project, prp.repository, cancelled);
    }
  };

  /** Cancels every job of a repository this scheduler no longer builds (OBS `wipeobsoleterepo`). */
  const cancelRepository = async (project: string, repository?: string): Promise<void> => {
    const r = await dispatcher.call(
      "job.discard",
      { project, ...(repository !== undefined ? { repository } : {}), arch },
      { idempotent: true, timeoutMs: 30_000 }
    );
    if (r.discarded) log.info({ project, repository, jobs: r.discarded }, "jobs of a dropped repository cancelled");
  };

  // A check leaves the filters of its new expansions to be made (IncrementalChecker.makeFilters):
  // they are made here, a few milliseconds at a time between other work, so that the first
  // change after a cold start does not wait for them all.
  let stopped = false;
  const makeFiltersWhenIdle = (prp: Prp, checker: IncrementalChecker): void => {
    if (prp.filtering === checker) return;
    prp.filtering = checker;
    const step = (): void => {
      if (!stopped && prp.checker === checker && checker.makeFilters(5)) setImmediate(step);
      else if (prp.filtering === checker) prp.filtering = undefined;
    };
    setImmediate(step);
  };

  /** Sets a repository's state; a change goes to the publisher (it publishes finished ones). */
  const setRepoState = async (prp: Prp, code: RepoResult["code"], details?: string): Promise<void> => {
    prp.repoDetails = details;
    if (code === prp.repoCode) return;
    prp.repoCode = code;
    log.info({ project: prp.project, repository: prp.repository, code }, "repository state changed");
    const ev = makeEvent<RepoStateChangedEvent>({
      type: "repo.state-changed",
      project: prp.project,
      repository: prp.repository,
      arch,
      code,
    });
    // Through the outbox: the publisher acts on it, so it must arrive even if NATS hiccups now.
    await store.transact(() => outbox.add(ev));
    void outbox.flush();
  };

  const check = async (prp: Prp): Promise<void> => {
    if (!prps.has(prpKey(prp.project, prp.repository))) return;
    prp.checking = true;
    try {
      await checkNow(prp);
    } finally {
      prp.checking = false;
    }
  };

  const checkNow = async (prp: Prp): Promise<void> => {
    while (prp.reload || !prp.checker) {
      await loadPrp(prp);
      if (prp.unavailable !== undefined) {
        prp.dirty = false;
        return setRepoState(prp, RepoCode.Broken, prp.unavailable);
      }
    }
    if (!prp.dirty) return;
    prp.dirty = false;
    const checker = prp.checker!;
    const t0 = performance.now();
    let out = checker.check();
    // A cycle's rebuild decision compares metas (OBS's "looked harder"): the ones it needed and
    // lacked are read, and the check, which left those members to be decided, runs again.
    for (let round = 0; out.missingMetas.length && round < 5; round++) {
      for (const id of out.missingMetas) await loadMetaOrNone(id);
      out = checker.check();
    }
    prp.lastCheckMs = performance.now() - t0;
    for (const b of out.builds) await submitJob(prp, checker, b);
    if (out.unwanted.length) await cancelJobs(prp, checker, out.unwanted);
    // The jobs just submitted are not in this check's output: check again to show them.
    if (out.builds.length) checker.check();
    makeFiltersWhenIdle(prp, checker);
    log.debug(
      {
        project: prp.project,
        repository: prp.repository,
        ms: Math.round(prp.lastCheckMs),
        evaluated: out.evaluated,
        expanded: out.expanded,
        builds: out.builds.length,
      },
      "repository checked"
    );
    for (const d of dependents(prp.project, prp.repository)) {
      d.checker?.setNotReadyElsewhere(prpKey(prp.project, prp.repository), checker.notReady());
      markDirty(d);
    }
    await setRepoState(prp, out.repoCode, out.repoDetails);
  };

  const gate = new AccessGate(ctx.rpc);
  const root: Ref<unknown> = spawn(
    ctx.system,
    (_s: undefined, msg: BridgedRequest) => {
      const req = validated(validators, msg);
      if (!req) return undefined;
      // The source role decides who may see a project's states or trigger its rebuilds.
      // A build's job shows what its sources say (dependencies, recipe): hidden with them.
      const need =
        req.type === "rebuild.request"
          ? AccessNeed.Write
          : req.type === "buildinfo.get"
            ? AccessNeed.Sources
            : AccessNeed.See;
      const target =
        req.type === "buildinfo.get"
          ? { project: req.args.project, package: req.args.package }
          : { project: req.args.project };
      void gate.require(req, target, need).then(
        () => handle(req),
        (err: unknown) => dispatch(req.replyTo, errorEnvelope(err))
      );
      return undefined;
    },
    `scheduler-${arch.replace(/[^a-zA-Z0-9_-]/g, "_")}`
  );

  const repoArch = new Children<CheckMsg>((name, key) =>
    spawn(
      root,
      async (_s: undefined, msg: CheckMsg) => {
        const prp = prps.get(key);
        if (!prp) return undefined;
        busy++;
        try {
          switch (msg.type) {
            case "prp.check":
              if (debounceMs > 0) await new Promise((r) => setTimeout(r, debounceMs));
              prp.queued = false;
              await check(prp);
              break;
            default:
              assertNever(msg.type);
          }
        } catch (err) {
          log.warn({ err, project: prp.project, repository: prp.repository }, "repository check failed, will retry");
          prp.reload = true;
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
        for (const prp of await syncProject(ev.project)) {
          // Flags of all packages may have changed; the package list is read again too.
          prp.reload = true;
          markDirty(prp);
        }
        for (const prp of prps.values()) {
          if (prp.path.some((x, i) => i > 0 && x.project === ev.project)) {
            prp.reload = true;
            markDirty(prp);
          }
        }
        return;
      }
      case "project.config-changed":
        for (const prp of prps.values()) {
          if (prp.path.some((x) => x.project === ev.project)) {
            prp.reload = true;
            markDirty(prp);
          }
        }
        return;
      case "project.deleted":
        await cancelRepository(ev.project);
        for (const prp of forProject(ev.project)) prps.delete(prpKey(prp.project, prp.repository));
        await dropSignaturesOf(ev.project);
        sweepOnceLoaded();
        for (const prp of prps.values()) {
          if (prp.path.some((x) => x.project === ev.project)) {
            prp.reload = true;
            markDirty(prp);
          }
        }
        return;
      // A service run starting blocks the package; its end expands its sources or breaks it.
      case "source.committed":
      case "package.meta-changed":
      case "service.requested":
      case "service.finished":
        // The project's own sources (project-wide services) are not a package to build.
        if (ev.package === "_project") return;
        for (const prp of forProject(ev.project)) {
          await update(prp, async (checker) => {
            const info = await source.call(
              "package.buildinfo",
              { project: ev.project, package: ev.package, repository: prp.repository, arch },
              { idempotent: true }
            );
            checker.upsertPackage(info);
          });
        }
        return;
      case "package.deleted":
        for (const prp of forProject(ev.project)) {
          await dropSignaturesOf(ev.project, prp.repository, ev.package);
          await update(prp, (checker) => checker.removePackage(ev.package));
        }
        return;
      case "repo.built": {
        const prp = prps.get(prpKey(ev.project, ev.repository));
        if (!prp) return;
        if (ev.arch !== arch) {
          // Another arch's build matters here only for its counter (OBS relsync), and only when it
          // raises it: no check for the rest. (Counters only rise, so a repository being read
          // again gets one at least as high from the repo role.)
          if (ev.code !== BuildResultCode.Succeeded) return;
          if ((prp.checker?.relsyncMax(ev.package, ev.versrel) ?? 0) >= ev.bcnt) return;
          return update(prp, (checker) => checker.raiseRelsync(ev.package, ev.versrel, ev.bcnt));
        }
        return update(prp, async (checker) => {
          if (ev.code === BuildResultCode.Succeeded) checker.raiseRelsync(ev.package, ev.versrel, ev.bcnt);
          const info = checker.packageInfo(ev.package);
          // The event carries the srcmd5 of the job; the checker compares verifymd5s.
          const verifymd5 = info && ev.srcmd5 === info.srcmd5 ? info.verifymd5 : ev.srcmd5;
          const last = await lastBuildOf({
            code: ev.code,
            jobId: ev.jobId,
            verifymd5,
            versrel: ev.versrel,
            bcnt: ev.bcnt,
            ...(ev.metaSha256 ? { metaSha256: ev.metaSha256 } : {}),
          });
          checker.setResult(ev.package, last);
          if (checker.job(ev.package)?.jobId === ev.jobId) checker.setJob(ev.package, undefined);
          // After the result is set: until then a check may still name the old one's dependencies.
          await dropOlderSignatures(ev.project, ev.repository, ev.package, ev.jobId);
        });
      }
      case "repo.wiped": {
        if (ev.arch !== arch) return;
        const prp = prps.get(prpKey(ev.project, ev.repository));
        if (!prp) return;
        // Wiped packages have no build any more, so they are built again; their reasons go with
        // the builds, as OBS's `reason` file goes with the package's directory.
        await store.transact(() => {
          for (const k of ev.packages) void store.db.remove(keys.buildReason(ev.project, ev.repository, k));
        });
        await update(prp, async (checker) => {
          for (const k of ev.packages) checker.setResult(k, undefined);
          // Only a queued or running job's signature can still be needed: its result will come.
          await store.transact(() => {
            for (const k of ev.packages) {
              const live = checker.job(k)?.jobId;
              dropIndexed(
                indexOf(ev.project, ev.repository, k)
                  .map((e) => e.key)
                  .filter((key) => key[4] !== live)
              );
            }
          });
        });
        return;
      }
      case "repo.pool-changed": {
        if (ev.arch !== arch) return;
        if (needMetas) for (const b of ev.added) if (b.metaSha256) await loadMeta(b.metaSha256);
        const removed = ev.removed.map((r) => r.name);
        for (const prp of prps.values()) {
          const layer = prp.path.findIndex((x) => x.project === ev.project && x.repository === ev.repository);
          if (layer < 0) continue;
          await update(prp, (checker) => checker.applyPoolDiff(layer, ev.added, removed));
        }
        return;
      }
      default:
        return;
    }
  };

  // ---- requests ----------------------------------------------------------------------------

  const requirePrp = (project: string, repository: string): Prp & { checker: IncrementalChecker } => {
    const prp = prps.get(prpKey(project, repository));
    if (!prp?.checker)
      throw new NotFoundError(`no repository ${project}/${repository} builds for ${arch} (or it is still loading)`);
    return prp as Prp & { checker: IncrementalChecker };
  };

  const handle = async (msg: SchedulerRequest): Promise<void> => {
    switch (msg.type) {
      case "results.get":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          const list = forProject(a.project).filter((p) => !a.repository || p.repository === a.repository);
          const jobs = list.some((p) => p.checker?.jobs().size)
            ? new Map(
                (
                  await listAllJobs(dispatcher, {
                    project: a.project,
                    ...(a.repository !== undefined ? { repository: a.repository } : {}),
                    arch,
                  })
                ).map((j) => [j.jobId, j])
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
              const checker = prp.checker;
              const states = checker?.states() ?? new Map();
              const names = checker ? [...checker.packages()].map((i) => i.package) : [];
              const packages: PackageResult[] = names
                .filter((k) => !a.package || k === a.package)
                .sort()
                .map((k) => {
                  const st = states.get(k) ?? { code: PackageCode.Unknown, details: "" };
                  let { code, details } = st;
                  const job = checker?.job(k);
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
                // OBS's :schedulerstate is `scheduling` while the repository is being checked.
                code: prp.checking ? RepoCode.Scheduling : prp.repoCode,
                ...(prp.repoDetails !== undefined && !prp.checking ? { details: prp.repoDetails } : {}),
                dirty:
                  pending > 0 ||
                  prp.dirty ||
                  prp.queued ||
                  // A broken repository waits for an event, not for its next read.
                  ((prp.reload || !checker) && prp.unavailable === undefined) ||
                  busy > 0,
                packages,
              };
            });
        });
      case "reason.get":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          if (!prps.has(prpKey(a.project, a.repository)))
            throw new NotFoundError(`no repository ${a.project}/${a.repository} builds for ${arch}`);
          const known = store.get<BuildReason>(keys.buildReason(a.project, a.repository, a.package));
          if (known) return known;
          // A build whose job this scheduler's store did not record: the reason its job carried.
          const r = await repo.call(
            "result.get",
            { project: a.project, repository: a.repository, arch, package: a.package },
            { idempotent: true }
          );
          return r ? { explain: r.reason, time: r.readyTime } : null;
        });
      case "buildinfo.get":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          const prp = requirePrp(a.project, a.repository);
          const info = prp.checker.packageInfo(a.package);
          if (!info) throw new NotFoundError(`no package ${a.package} in ${a.project}`);
          const exp = prp.checker.expansion;
          const st = prp.checker.states().get(a.package) ?? { code: PackageCode.Unknown, details: "" };
          const view: BuildInfoView = {
            project: a.project,
            repository: a.repository,
            arch,
            package: a.package,
            code: st.code,
            details: st.details,
            srcmd5: info.srcmd5,
            ...(await countersOf(prp, prp.checker, info)),
            ...(info.specFile ? { specFile: info.specFile } : {}),
            debuginfo: info.flags.debuginfo,
            subpacks: info.subpacks,
            constraints: {
              prjconf: exp.config.constraint,
              recipe: info.constraints,
              ...(info.constraintsFile ? { file: info.constraintsFile } : {}),
            },
            bdeps: [],
          };
          if (info.error) return { ...view, error: info.error };
          const e = exp.edeps(info);
          if (!e.ok) return { ...view, error: e.error };
          const located = exp.buildDeps(info, e.packages);
          if (!located.ok) return { ...view, error: located.error };
          view.bdeps = located.bdeps;
          return view;
        });
      case "builddepinfo.get":
        return answer(msg.replyTo, () => {
          const prp = requirePrp(msg.args.project, msg.args.repository);
          const c = prp.checker;
          return {
            project: prp.project,
            repository: prp.repository,
            arch,
            packages: [...c.packages()]
              .sort((x, y) => (x.package < y.package ? -1 : 1))
              .map((i) => ({
                package: i.package,
                source: i.package,
                pkgdeps: [...c.pkgdeps(i.package)],
                subpkgs: i.subpacks,
                revdeps: c.revdeps(i.package),
              })),
            cycles: c.cycles(),
          };
        });
      case "rebuild.request":
        return answer(msg.replyTo, () => {
          const a = msg.args;
          let n = 0;
          let kept = 0;
          for (const prp of forProject(a.project)) {
            if (a.repository && prp.repository !== a.repository) continue;
            const c = prp.checker;
            if (!c) continue;
            for (const i of [...c.packages()]) {
              if (a.package && i.package !== a.package) continue;
              if (a.code && c.states().get(i.package)?.code !== a.code) continue;
              n++;
              // As OBS (BSSched::BuildJob::create finds the job of the current sources and stays
              // `scheduled`): a queued or running job of the current sources is that rebuild.
              if (c.job(i.package)?.srcmd5 === i.verifymd5) kept++;
              else c.forceRebuild(i.package);
            }
            markDirty(prp);
          }
          if (a.package && n === 0 && !a.code)
            throw new InvalidInputError(`no package ${a.package} in ${a.project} for ${arch}`);
          return { packages: n, kept };
        });
      default:
        assertNever(msg);
    }
  };

  // Initial load: every repository of every project that builds for this arch.
  for (const p of await source.call("project.list", {}, { idempotent: true, timeoutMs: 60_000 })) {
    for (const prp of await syncProject(p.name)) markDirty(prp);
  }
  // Swept once these are loaded (some may have been already).
  atStart = [...prps.keys()];
  sweepOnceLoaded();
  // Jobs of repositories deleted while no scheduler ran.
  for (const j of await listAllJobs(dispatcher, { arch })) {
    if (prps.has(prpKey(j.project, j.repository))) continue;
    await dispatcher.call(
      "job.discard",
      { project: j.project, repository: j.repository, arch, packages: [j.package] },
      { idempotent: true, timeoutMs: 30_000 }
    );
    log.info(
      { project: j.project, repository: j.repository, package: j.package },
      "job of a dropped repository cancelled"
    );
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
      stopped = true;
      stopPing();
      await sub.drain();
      await consumer.stop();
      for (const k of [...repoArch.keys()]) stop(repoArch.get(k));
      stop(root);
      // A check under way goes on to its end, reading and writing the store: it closes after.
      const deadline = Date.now() + 30_000;
      while (busy > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      if (busy > 0) log.warn({ checks: busy }, "scheduler stops with checks still running");
      await sweep;
      await store.close();
      await lease.release();
      log.info({}, "scheduler stopped");
    },
  };
}
