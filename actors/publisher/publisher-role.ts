/**
 * The publisher: turns finished repositories into rpm-md repositories that `dnf` and `zypper`
 * can use (OBS bs_publish).
 *
 * Triggers, from its durable event consumer:
 * - `repo.state-changed` with code `finished` (schedulers announce it): that arch's contribution
 *   is taken anew from the repo role and the repository republished;
 * - `repo.flags-changed` (the repo role applied a meta change, e.g. `publish` switched on) and
 *   `repo.wiped`: every finished arch's contribution is taken anew (the repo role's own events,
 *   not the source role's, so that the repo role's view is already up to date);
 * - at start: every repository with a finished arch, in case a trigger was lost in a crash;
 * - `kiln admin publish` (`publish.now`): every arch, finished or not.
 * A run whose content equals the served tree writes nothing. Runs of one repository are
 * serialised and coalesced; a failed run is retried with backoff.
 *
 * Binaries come from the repo role over NATS into a content cache (`<data>/publisher/cache`),
 * from which trees are hard-linked; a cached file no tree links to any more is removed after a
 * run. See tree.ts for the atomic switch and select.ts for what is published.
 */
import { existsSync, readlinkSync } from "node:fs";
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { spawn, stop, type Ref } from "nact";
import {
  NotFoundError,
  Role,
  RoleClient,
  bridgeActor,
  consumeEvents,
  downloadBlob,
  ensureEventStream,
  makeEvent,
  publishEvent,
  subjects,
  type BridgedRequest,
  type EventBase,
  type EventConsumer,
} from "../../transport/index.ts";
import { Outbox, RoleStore, keys } from "../../storage/index.ts";
import { answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { evaluateFlag } from "../common/flags.ts";
import { RepoCode } from "../common/model.ts";
import { acquireLease, answerPings, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import { obj, projectField, repositoryField } from "../common/validate.ts";
import type { PublishPackage, RepoApi, RepoEvent } from "../repo/protocol.ts";
import { AccessNeed } from "../source/access.ts";
import { AccessGate } from "../source/access-gate.ts";
import type { SourceEvent } from "../source/protocol.ts";
import { startPublishServer, type PublishServer } from "./http.ts";
import {
  PublishOutcome,
  type PublishedArch,
  type PublishedRepo,
  type PublisherApi,
  type PublisherEvent,
  type PublisherRequest,
  type RepoStateChangedEvent,
  type SelectedBinary,
} from "./protocol.ts";
import { mergeArchs, selectArch } from "./select.ts";
import { removeProjectTrees, removeTree, servedPath, versionDir, writeTree } from "./tree.ts";

export interface PublisherOptions {
  /** Root of the published trees. @default `<data>/publish` */
  publishDir?: string;
  /** Serves the published trees read-only over HTTP on 127.0.0.1 at this port (0: any free one). */
  httpPort?: number;
  /** @default "createrepo_c" */
  createrepo?: string;
  /** Parallel binary downloads from the repo role. @default 32 */
  downloads?: number;
}

/** A started publisher; `httpUrl` is set when it serves its trees. */
export interface RunningPublisher extends RunningRole {
  httpUrl?: string;
  publishDir: string;
}

/** Which archs get their contribution taken anew: listed ones, all finished ones, or all. */
type Refresh = Set<string> | "finished" | "all";

function mergeRefresh(a: Refresh, b: Refresh): Refresh {
  if (a === "all" || b === "all") return "all";
  if (a === "finished" || b === "finished") return "finished";
  return new Set([...a, ...b]);
}

const repoKey = (p: string, r: string): string => `${p}\u0000${r}`;

const where = (raw: unknown): { project: string; repository: string } => {
  const o = obj(raw);
  return { project: projectField(o), repository: repositoryField(o) };
};

const validators: Validators<PublisherApi> = {
  "publish.now": where,
  "publish.status": (raw) => ({ project: projectField(obj(raw)) }),
};

type PublishResult = PublisherApi["publish.now"]["res"];

export async function startPublisherRole(ctx: RoleContext, opts: PublisherOptions = {}): Promise<RunningPublisher> {
  const log = ctx.log.child({ role: "publisher" });
  const lease = await acquireLease(ctx, "publisher");
  const dir = path.join(ctx.dataDir, "publisher");
  const root = opts.publishDir ?? path.join(ctx.dataDir, "publish");
  const cacheDir = path.join(dir, "cache");
  await mkdir(root, { recursive: true });
  await mkdir(cacheDir, { recursive: true });
  const store = RoleStore.open({ path: path.join(dir, "db"), log });
  const js = ctx.nc.jetstream();
  await ensureEventStream(await ctx.nc.jetstreamManager(), { replicas: ctx.replicas });
  const outbox = new Outbox<PublisherEvent>(store, (e) => publishEvent(js, e), log);
  await outbox.flush();
  const repo = new RoleClient<RepoApi>(ctx.rpc, (t) => subjects.rpc(Role.Repo, t));
  const startedAt = Date.now();
  const downloads = opts.downloads ?? 32;
  let running = 0;
  let stopping = false;

  const cachePath = (sha256: string): string => path.join(cacheDir, sha256.slice(0, 2), sha256);

  const ensureCached = async (binaries: readonly SelectedBinary[]): Promise<void> => {
    const missing = [...new Map(binaries.map((b) => [b.sha256, b])).values()].filter(
      (b) => !existsSync(cachePath(b.sha256))
    );
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < missing.length) {
        const b = missing[next++]!;
        const dest = cachePath(b.sha256);
        await mkdir(path.dirname(dest), { recursive: true });
        await downloadBlob(repo, b.sha256, dest);
      }
    };
    await Promise.all(Array.from({ length: Math.min(downloads, missing.length) }, worker));
  };

  /** Removes cached files that no tree links to any more; only while no run is under way. */
  const collectCache = async (): Promise<number> => {
    if (running > 0) return 0;
    let removed = 0;
    for (const sub of await readdir(cacheDir).catch(() => [] as string[])) {
      const d = path.join(cacheDir, sub);
      for (const f of await readdir(d).catch(() => [] as string[])) {
        if (running > 0) return removed;
        const st = await stat(path.join(d, f)).catch(() => undefined);
        if (st?.isFile() && st.nlink === 1) {
          await rm(path.join(d, f), { force: true });
          removed++;
        }
      }
    }
    return removed;
  };

  /** All packages of one repository/arch, pages of one consistent generation. */
  const fetchArch = async (project: string, repository: string, arch: string): Promise<PublishPackage[]> => {
    for (let attempt = 0; ; attempt++) {
      const out: PublishPackage[] = [];
      let generation: string | undefined;
      let after: string | undefined;
      let consistent = true;
      do {
        const page = await repo.call(
          "publish.select",
          { project, repository, arch, ...(after !== undefined ? { after } : {}) },
          { idempotent: true, timeoutMs: 60_000 }
        );
        if (generation !== undefined && page.generation !== generation) {
          consistent = false;
          break;
        }
        generation = page.generation;
        out.push(...page.packages);
        after = page.next;
      } while (after !== undefined);
      // Results keep changing under a long paging: after a few tries, take what was read.
      if (consistent || attempt >= 4) return out;
    }
  };

  const servedVersion = (project: string, repository: string): number | undefined => {
    try {
      const n = Number(path.basename(readlinkSync(servedPath(root, project, repository))));
      return Number.isInteger(n) ? n : undefined;
    } catch {
      return undefined;
    }
  };

  const nextVersion = async (project: string, repository: string, cur: PublishedRepo | undefined): Promise<number> => {
    let max = cur?.version ?? 0;
    // A crash after switching the link but before recording the version leaves a newer tree.
    const parent = path.dirname(versionDir(root, project, repository, 0));
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      const n = Number(name.replace(/\.tmp$/, ""));
      if (Number.isInteger(n) && n > max) max = n;
    }
    return max + 1;
  };

  const announced = (project: string, repository: string, arch: string): string | undefined =>
    store.get<{ code: string }>(keys.announcedState(project, repository, arch))?.code;

  /** One publish run of a repository. */
  const publishRepo = async (project: string, repository: string, refresh: Refresh): Promise<PublishResult> => {
    const view = await repo.call("publish.project", { project }, { idempotent: true });
    const meta = view?.repositories.find((r) => r.name === repository);
    if (!view || !meta) return { outcome: PublishOutcome.Skipped };
    // Hidden projects are not published; a locked one keeps what it has.
    if (!evaluateFlag("access", view, undefined, undefined, undefined)) return { outcome: PublishOutcome.Skipped };
    if (evaluateFlag("lock", view, undefined, repository, undefined)) return { outcome: PublishOutcome.Skipped };
    const contributions: { arch: string; binaries: SelectedBinary[] }[] = [];
    const snapshots: PublishedArch[] = [];
    for (const arch of meta.archs) {
      let snap = store.get<PublishedArch>(keys.publishedArch(project, repository, arch));
      const take =
        refresh === "all" ||
        ((refresh === "finished" || refresh.has(arch)) && announced(project, repository, arch) === RepoCode.Finished);
      if (take) {
        const sel = selectArch(await fetchArch(project, repository, arch), snap?.binaries);
        snap = { project, repository, arch, time: Date.now(), ...sel };
        snapshots.push(snap);
        if (sel.conflicts.length)
          log.info({ project, repository, arch, conflicts: sel.conflicts.length }, "publish conflicts");
      }
      if (snap) contributions.push({ arch, binaries: snap.binaries });
    }
    const merged = mergeArchs(contributions);
    const cur = store.get<PublishedRepo>(keys.publishedRepo(project, repository));
    const served = existsSync(servedPath(root, project, repository));
    const saveSnapshots = async (): Promise<void> => {
      if (snapshots.length === 0) return;
      await store.transact(() => {
        for (const s of snapshots) void store.db.put(keys.publishedArch(project, repository, s.arch), s);
      });
    };
    if (cur && served && cur.digest === merged.digest) {
      await saveSnapshots();
      return { outcome: PublishOutcome.Unchanged, version: cur.version, binaries: cur.binaries };
    }
    if (!cur && merged.binaries.length === 0) {
      await saveSnapshots();
      return { outcome: PublishOutcome.Unpublished };
    }
    await ensureCached(merged.binaries);
    const version = await nextVersion(project, repository, cur);
    const previous = servedVersion(project, repository);
    const t0 = performance.now();
    await writeTree({
      root,
      project,
      repository,
      version,
      files: merged.binaries.map((b) => ({ path: b.path, source: cachePath(b.sha256) })),
      ...(previous !== undefined ? { previous } : {}),
      ...(opts.createrepo ? { createrepo: opts.createrepo } : {}),
      log,
    });
    const rec: PublishedRepo = {
      project,
      repository,
      version,
      digest: merged.digest,
      time: Date.now(),
      binaries: merged.binaries.length,
      archs: contributions.map((c) => c.arch),
    };
    await store.transact(() => {
      for (const s of snapshots) void store.db.put(keys.publishedArch(project, repository, s.arch), s);
      void store.db.put(keys.publishedRepo(project, repository), rec);
      outbox.add(
        makeEvent<PublisherEvent>({
          type: "repo.published",
          project,
          repository,
          version,
          digest: merged.digest,
          binaries: rec.binaries,
          archs: rec.archs,
        })
      );
    });
    await outbox.flush();
    log.info(
      { project, repository, version, binaries: rec.binaries, ms: Math.round(performance.now() - t0) },
      "repository published"
    );
    return {
      outcome: PublishOutcome.Published,
      version,
      binaries: rec.binaries,
      path: servedPath(root, project, repository),
    };
  };

  // ---- per-repository serialisation ----------------------------------------------------------

  const chains = new Map<
    string,
    { tail: Promise<unknown>; pending?: { refresh: Refresh; promise: Promise<PublishResult> }; failures: number }
  >();

  const schedule = (project: string, repository: string, refresh: Refresh): Promise<PublishResult> => {
    const k = repoKey(project, repository);
    let c = chains.get(k);
    if (!c) {
      c = { tail: Promise.resolve(), failures: 0 };
      chains.set(k, c);
    }
    const chain = c;
    if (chain.pending) {
      chain.pending.refresh = mergeRefresh(chain.pending.refresh, refresh);
      return chain.pending.promise;
    }
    const pend: { refresh: Refresh; promise: Promise<PublishResult> } = {
      refresh,
      promise: Promise.resolve() as never,
    };
    chain.pending = pend;
    pend.promise = chain.tail.then(async () => {
      if (chain.pending === pend) chain.pending = undefined;
      running++;
      try {
        const r = await publishRepo(project, repository, pend.refresh);
        chain.failures = 0;
        return r;
      } catch (err) {
        chain.failures++;
        const wait = Math.min(300_000, 5_000 * 2 ** Math.min(chain.failures, 6));
        log.error({ err, project, repository, retryInMs: wait }, "publish failed");
        if (!stopping)
          setTimeout(() => void schedule(project, repository, pend.refresh).catch(() => undefined), wait).unref();
        throw err;
      } finally {
        running--;
        if (running === 0 && !stopping) {
          void collectCache().catch((err: unknown) => log.warn({ err }, "cache collection failed"));
        }
      }
    });
    chain.tail = pend.promise.catch(() => undefined);
    return pend.promise;
  };

  const trigger = (project: string, repository: string, refresh: Refresh): void => {
    void schedule(project, repository, refresh).catch(() => undefined);
  };

  /** Repositories of a project the publisher has heard of (announced or published). */
  const knownRepos = (project: string): Set<string> => {
    const out = new Set<string>();
    for (const k of store.scanKeys(keys.announcedStatesOf(project))) out.add(k[2] as string);
    for (const k of store.scanKeys(keys.publishedReposOf(project))) out.add(k[2] as string);
    return out;
  };

  const forgetProject = async (project: string): Promise<void> => {
    await store.transact(() => {
      for (const prefix of [
        keys.announcedStatesOf(project),
        keys.publishedReposOf(project),
        keys.publishedArchsOf(project),
      ]) {
        for (const k of [...store.scanKeys(prefix)]) void store.db.remove(k);
      }
    });
  };

  // ---- events --------------------------------------------------------------------------------

  const onEvent = async (e: SourceEvent | RepoEvent | RepoStateChangedEvent | EventBase): Promise<void> => {
    const ev = e as SourceEvent | RepoEvent | RepoStateChangedEvent;
    switch (ev.type) {
      case "repo.state-changed":
        await store.transact(
          () =>
            void store.db.put(keys.announcedState(ev.project, ev.repository, ev.arch), { code: ev.code, time: ev.time })
        );
        if (ev.code === RepoCode.Finished) trigger(ev.project, ev.repository, new Set([ev.arch]));
        return;
      case "project.meta-changed": {
        const now = new Set(ev.repositories.map((r) => r.name));
        for (const r of knownRepos(ev.project)) {
          if (now.has(r)) continue;
          // A repository dropped from the meta is unpublished.
          await chains.get(repoKey(ev.project, r))?.tail;
          await removeTree(root, ev.project, r);
          await store.transact(() => {
            void store.db.remove(keys.publishedRepo(ev.project, r));
            for (const k of [...store.scanKeys(keys.publishedArchsOf(ev.project, r))]) void store.db.remove(k);
          });
        }
        return;
      }
      // The repo role's view changed (it announces after applying): what is publishable may have.
      case "repo.flags-changed":
        for (const r of knownRepos(ev.project)) trigger(ev.project, r, "finished");
        return;
      case "repo.wiped":
        trigger(ev.project, ev.repository, "finished");
        return;
      case "project.deleted":
        for (const r of knownRepos(ev.project)) await chains.get(repoKey(ev.project, r))?.tail;
        await removeProjectTrees(root, ev.project);
        await forgetProject(ev.project);
        return;
      default:
        return;
    }
  };

  // ---- requests ------------------------------------------------------------------------------

  const gate = new AccessGate(ctx.rpc);
  /** The source role decides, on the caller's request as it was signed. */
  const authorize = (msg: PublisherRequest, need: AccessNeed): Promise<string> =>
    gate.require(
      { subject: msg.subject, args: msg.rawArgs ?? msg.args, ...(msg.auth ? { auth: msg.auth } : {}) },
      { project: msg.args.project },
      need
    );

  const handle = async (msg: PublisherRequest): Promise<void> => {
    switch (msg.type) {
      case "publish.now":
        return answer(msg.replyTo, async () => {
          await authorize(msg, AccessNeed.Write);
          return schedule(msg.args.project, msg.args.repository, "all");
        });
      case "publish.status":
        return answer(msg.replyTo, async () => {
          await authorize(msg, AccessNeed.See);
          const list = [...store.scan<PublishedRepo>(keys.publishedReposOf(msg.args.project))].map((e) => ({
            ...e.value,
            path: servedPath(root, e.value.project, e.value.repository),
          }));
          if (list.length === 0 && knownRepos(msg.args.project).size === 0) {
            throw new NotFoundError(`nothing of ${msg.args.project} is published`);
          }
          return list;
        });
      default:
        assertNever(msg);
    }
  };

  const rootActor = spawn(
    ctx.system,
    (_s: undefined, msg: BridgedRequest) => {
      const req = validated(validators, msg);
      // Publish runs are serialised per repository by `schedule`, not by the mailbox.
      if (req) void handle(req);
      return undefined;
    },
    "publisher"
  );

  let server: PublishServer | undefined;
  if (opts.httpPort !== undefined) {
    server = await startPublishServer({ root, port: opts.httpPort, log });
    log.info({ url: server.url, root }, "published trees served");
  }
  const consumer: EventConsumer = await consumeEvents<SourceEvent | RepoStateChangedEvent>(ctx.nc, {
    durable: "publisher",
    filterSubject: subjects.eventsAll(),
    handler: onEvent,
    log,
  });
  const sub = bridgeActor(ctx.nc, rootActor as unknown as Ref<BridgedRequest>, {
    subject: subjects.rpcAll(Role.Publisher),
    queue: Role.Publisher,
    prefixTokens: 3,
    log,
    queryTimeoutMs: 60 * 60_000,
  });
  // Runs a crash may have cut short: the digest check makes them cheap when nothing changed.
  const resume = new Set<string>();
  for (const { key, value } of store.scan<{ code: string }>(keys.announcedStatesAll())) {
    if (value.code === RepoCode.Finished) resume.add(repoKey(key[1] as string, key[2] as string));
  }
  for (const k of resume) {
    const [p, r] = k.split("\u0000") as [string, string];
    trigger(p, r, "finished");
  }
  const stopPing = answerPings(ctx.nc, () =>
    pingInfo("publisher", ctx.nodeId, startedAt, { running, ...(server ? { url: server.url } : {}) })
  );
  log.info({ root }, "publisher started");
  return {
    role: "publisher",
    publishDir: root,
    ...(server ? { httpUrl: server.url } : {}),
    async stop(): Promise<void> {
      stopping = true;
      stopPing();
      await sub.drain();
      await consumer.stop();
      for (const c of chains.values()) await c.tail;
      await server?.close();
      await outbox.stop();
      await store.close();
      await lease.release();
      stop(rootActor);
      log.info({}, "publisher stopped");
    },
  };
}
