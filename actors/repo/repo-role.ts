/**
 * The repo role: build results, the build pool, cross-arch imports, histories, and downloads of
 * binaries and logs.
 *
 * RepoServer (the root actor) validates requests and routes each to the RepoArchResults actor of
 * its project/repository/arch (project-wide requests to one per project), so the requests of one
 * repository/arch are handled in order. The state ({@link RepoState}) stores a result and updates
 * the pools in one LMDB transaction together with the `repo.built` and `repo.pool-changed`
 * events (outbox), which are published after commit and re-sent after a crash until the stream
 * acknowledged them.
 *
 * The role learns flags (`useforbuild` decides the pool, `publish`, `sourceaccess`,
 * `binarydownload`, `access`, `lock`) and ExportFilters from the source role: a durable event
 * consumer follows project and package meta and config changes and fetches what changed, and
 * anything the role has no copy of yet is fetched when first needed.
 */
import path from "node:path";
import { dispatch, spawn, stop, type Ref } from "nact";
import {
  BLOB_VERBS,
  CHUNK_BYTES,
  ConflictError,
  InvalidInputError,
  NotFoundError,
  Role,
  RoleClient,
  blobHandler,
  bridgeActor,
  consumeEvents,
  ensureEventStream,
  publishEvent,
  subjects,
  type BridgedRequest,
  type EventBase,
  type EventConsumer,
  type KilnError,
  type SignedAuth,
} from "../../transport/index.ts";
import { BlobStore, Outbox, RoleStore } from "../../storage/index.ts";
import { Children, answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { BuildResultCode } from "../common/model.ts";
import { parseBuildConfig } from "../common/prjconf.ts";
import { acquireLease, answerPings, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import {
  archField,
  arr,
  bool,
  int,
  md5,
  obj,
  oneOf,
  optField,
  optInt,
  optStr,
  packageField,
  projectField,
  repositoryField,
  sha256,
  str,
  type Raw,
} from "../common/validate.ts";
import { validateFileName } from "../common/names.ts";
import type { DispatcherApi } from "../dispatcher/protocol.ts";
import { AccessNeed } from "../source/access.ts";
import { AccessGate, type CallerRequest } from "../source/access-gate.ts";
import type { SourceApi, SourceEvent } from "../source/protocol.ts";
import { readRpmHeader } from "./rpm-header.ts";
import { RepoState, type RepoLookups, type ResultInput } from "./repo-state.ts";
import type { RepoApi, RepoEvent, RepoRequest, ResultView, StoredBinary, UploadedFile } from "./protocol.ts";

const where = (raw: unknown): { project: string; repository: string; arch: string } => {
  const o = obj(raw);
  return { project: projectField(o), repository: repositoryField(o), arch: archField(o) };
};
const limitOf = (o: Raw): { limit?: number } => {
  const limit = optInt(o, "limit", { min: 1, max: 10_000 });
  return limit === undefined ? {} : { limit };
};

/** Largest `file.read` answered, as `blob.read`'s. */
const MAX_FILE_READ_BYTES = 3 * CHUNK_BYTES;

const noBlobArgs = (): never => {
  throw new InvalidInputError("blob verbs are served directly");
};

const validators: Validators<RepoApi> = {
  "result.put": (raw) => {
    const o = obj(raw);
    return {
      ...where(raw),
      package: packageField(o),
      jobId: str(o, "jobId", { max: 64 }),
      workerId: str(o, "workerId"),
      code: oneOf(o, "code", Object.values(BuildResultCode)),
      files: arr(
        o,
        "files",
        (v): UploadedFile => {
          const f = obj(v, "file");
          const name = str(f, "name", { max: 255 });
          validateFileName(name);
          return { name, sha256: sha256(f, "sha256"), md5: md5(f, "md5"), size: int(f, "size", { min: 0 }) };
        },
        { max: 10_000 }
      ),
      startTime: int(o, "startTime", { min: 0 }),
      endTime: int(o, "endTime", { min: 0 }),
    };
  },
  "result.get": (raw) => ({ ...where(raw), package: packageField(obj(raw)) }),
  "result.list": where,
  "result.wipe": (raw) => {
    const o = obj(raw);
    const r: RepoApi["result.wipe"]["req"] = { project: projectField(o) };
    if (o.package !== undefined) r.package = packageField(o);
    const repository = optField(o, "repository", repositoryField);
    if (repository !== undefined) r.repository = repository;
    const arch = optField(o, "arch", archField);
    if (arch !== undefined) r.arch = arch;
    return r;
  },
  "pool.get": where,
  "pool.page": (raw) => {
    const o = obj(raw);
    const after = optStr(o, "after", { max: 1000 });
    return { ...where(raw), ...(after !== undefined ? { after } : {}), ...limitOf(o) };
  },
  "pool.rebuild": (raw) => ({ ...where(raw), ...(bool(obj(raw), "deep", false) ? { deep: true } : {}) }),
  "binaries.list": (raw) => ({ ...where(raw), package: packageField(obj(raw)) }),
  "file.stat": (raw) => {
    const o = obj(raw);
    return { ...where(raw), package: packageField(o), sha256: sha256(o, "sha256") };
  },
  "file.read": (raw) => {
    const o = obj(raw);
    return {
      ...where(raw),
      package: packageField(o),
      sha256: sha256(o, "sha256"),
      offset: int(o, "offset", { min: 0 }),
      // As blob.read: a reply must fit NATS's 1 MiB max_payload with its envelope.
      length: Math.min(int(o, "length", { min: 0 }), MAX_FILE_READ_BYTES),
    };
  },
  "history.build": (raw) => ({ ...where(raw), package: packageField(obj(raw)), ...limitOf(obj(raw)) }),
  "relsync.get": (raw) => {
    const o = obj(raw);
    return { project: projectField(o), repository: repositoryField(o) };
  },
  "history.jobs": (raw) => {
    const o = obj(raw);
    return { ...where(raw), ...(o.package !== undefined ? { package: packageField(o) } : {}), ...limitOf(o) };
  },
  "publish.project": (raw) => ({ project: projectField(obj(raw)) }),
  "publish.select": (raw) => {
    const o = obj(raw);
    const after = optStr(o, "after", { max: 200 });
    return { ...where(raw), ...(after !== undefined ? { after } : {}), ...limitOf(o) };
  },
  "blob.stat": noBlobArgs,
  "blob.read": noBlobArgs,
  "upload.begin": noBlobArgs,
  "upload.chunk": noBlobArgs,
  "upload.commit": noBlobArgs,
  "upload.abort": noBlobArgs,
  "upload.put": noBlobArgs,
};

export interface RepoRoleOptions {
  /** Largest accepted uploaded file. @default 4 GiB */
  maxBlobBytes?: number;
}

const isCode = (err: unknown, code: string): boolean => (err as KilnError | undefined)?.code === code;

/** A request as received, with what the source role needs to authenticate its caller. */
type CallerMsg = { subject: string; args: unknown; rawArgs?: unknown; auth?: SignedAuth };
type AccessTarget = { project: string; package?: string; repository?: string; arch?: string };
const callerOf = (msg: CallerMsg): CallerRequest => ({
  subject: msg.subject,
  args: msg.rawArgs ?? msg.args,
  ...(msg.auth ? { auth: msg.auth } : {}),
});
/** A multibuild flavour (`pkg:flavor`) has the flags of its package. */
const flagsOf = (pkg: string): string => pkg.split(":")[0]!;

export async function startRepoRole(ctx: RoleContext, opts: RepoRoleOptions = {}): Promise<RunningRole> {
  const log = ctx.log.child({ role: "repo" });
  const lease = await acquireLease(ctx, "repo");
  const dir = path.join(ctx.dataDir, "repo");
  const store = RoleStore.open({ path: path.join(dir, "db"), log });
  const blobs = new BlobStore({
    dir: path.join(dir, "blobs"),
    store,
    log,
    ...(opts.maxBlobBytes ? { maxBlobBytes: opts.maxBlobBytes } : {}),
  });
  const js = ctx.nc.jetstream();
  await ensureEventStream(await ctx.nc.jetstreamManager(), { replicas: ctx.replicas });
  const outbox = new Outbox<RepoEvent>(store, (e) => publishEvent(js, e), log);
  await outbox.flush();
  const dispatcher = new RoleClient<DispatcherApi>(ctx.rpc, (t) => subjects.rpc(Role.Dispatcher, t));
  const source = new RoleClient<SourceApi>(ctx.rpc, (t) => subjects.rpc(Role.Source, t));
  const startedAt = Date.now();

  const lookups: RepoLookups = {
    async project(project) {
      try {
        const { meta } = await source.call("project.get-meta", { project }, { idempotent: true });
        return { flags: meta.flags, repositories: meta.repositories.map((r) => ({ name: r.name, archs: r.archs })) };
      } catch (err) {
        if (isCode(err, "ERR_NOT_FOUND")) return undefined;
        throw err;
      }
    },
    async package(project, pkg) {
      try {
        const { meta } = await source.call("package.get-meta", { project, package: pkg }, { idempotent: true });
        return { flags: meta.flags };
      } catch (err) {
        if (isCode(err, "ERR_NOT_FOUND")) return undefined;
        throw err;
      }
    },
    async buildConfig(project, repository, arch) {
      try {
        const view = await source.call("project.build-config", { project, repository }, { idempotent: true });
        return { exportFilter: parseBuildConfig(view.layers, { arch }).exportFilter, path: view.path };
      } catch (err) {
        // A repository that is gone keeps its stored results until they are wiped.
        if (isCode(err, "ERR_NOT_FOUND")) return { exportFilter: [], path: [{ project, repository }] };
        throw err;
      }
    },
  };
  const state = new RepoState({ store, outbox, lookups, log });

  const gate = new AccessGate(ctx.rpc);
  /**
   * Access control is the source role's: the caller's own request (subject, arguments as
   * signed, signature) goes to its `access.check` (AccessGate), which authenticates it and
   * answers or refuses with the error the caller gets. Reads are checked only where the repo
   * role's copy of the flags says something is restricted, so public projects cost no call.
   */
  const authorize = async (msg: CallerMsg, need: AccessNeed, q: AccessTarget): Promise<void> => {
    if (need === AccessNeed.Binaries && q.package !== undefined)
      await state.ensureFlags(q.project, [flagsOf(q.package)]);
    if (need !== AccessNeed.Write) {
      const open =
        state.flag("access", q.project, undefined) &&
        (need === AccessNeed.See ||
          state.flag("binarydownload", q.project, q.package && flagsOf(q.package), q.repository, q.arch));
      if (open) return;
    }
    await gate.require(callerOf(msg), q, need);
  };

  /**
   * Which of `packages` the caller may download the binaries of in this repository/arch, for
   * answers that name those binaries (and with them the hashes that read them). One access call
   * at most, as a signed request's nonce is good for one. Rejects as `access.check` does when
   * the caller may not see the project.
   */
  const downloadable = async (
    msg: CallerMsg,
    q: { project: string; repository: string; arch: string },
    packages: Iterable<string>
  ): Promise<(pkg: string) => boolean> => {
    if (!state.flag("access", q.project, undefined)) {
      // Whoever may see a hidden project is a member of it, an admin or a kiln role, and each of
      // them may download every binary in it.
      await gate.require(callerOf(msg), q, AccessNeed.See);
      return () => true;
    }
    const bases = [...new Set([...packages].map(flagsOf))];
    await state.ensureFlags(q.project, bases);
    const restricted = bases.filter((p) => !state.flag("binarydownload", q.project, p, q.repository, q.arch));
    if (restricted.length === 0) return () => true;
    const allowed = await gate.filter(
      callerOf(msg),
      restricted.map((p) => ({ project: q.project, package: p, repository: q.repository, arch: q.arch })),
      AccessNeed.Binaries
    );
    const refused = new Set(restricted.filter((_, i) => allowed[i] !== true));
    return (pkg) => !refused.has(flagsOf(pkg));
  };

  /**
   * The blob a `file.stat`/`file.read` names, once the caller passed the check its kind of file
   * needs: a binary or import the right to download it, the build log sight of the project.
   */
  const fileOf = async (
    msg: CallerMsg,
    a: { project: string; repository: string; arch: string; package: string; sha256: string }
  ): Promise<string> => {
    const r = state.result(a.project, a.repository, a.arch, a.package);
    const isBinary =
      r?.binaries.some((b) => b.sha256 === a.sha256) ||
      state
        .imports(a.project, a.repository, a.arch, a.package)
        .some((i) => i.binaries.some((b) => b.sha256 === a.sha256));
    await authorize(msg, isBinary ? AccessNeed.Binaries : AccessNeed.See, a);
    if (!isBinary && r?.logSha256 !== a.sha256) {
      throw new NotFoundError(
        `no file with sha256 ${a.sha256} in the result of ${a.package} in ${a.project}/${a.repository}/${a.arch}`
      );
    }
    return a.sha256;
  };

  /** Reads the files of a result; refuses anything that is not what a build produces. */
  const readUpload = async (
    files: UploadedFile[],
    succeeded: boolean
  ): Promise<{ binaries: StoredBinary[]; log?: string; meta?: string; stats?: string }> => {
    const out: { binaries: StoredBinary[]; log?: string; meta?: string; stats?: string } = { binaries: [] };
    const seen = new Set<string>();
    for (const f of files) {
      if (seen.has(f.name)) throw new InvalidInputError(`file ${f.name} is uploaded twice`);
      seen.add(f.name);
      const info = await blobs.stat(f.sha256);
      if (!info || info.md5 !== f.md5 || info.size !== f.size) {
        throw new InvalidInputError(`uploaded file ${f.name} is missing or does not match its checksum`);
      }
      if (f.name === "_log") out.log = f.sha256;
      else if (f.name === "_meta") out.meta = f.sha256;
      else if (f.name === "_statistics") out.stats = f.sha256;
      else if (!f.name.endsWith(".rpm") || f.name.startsWith("::")) {
        throw new InvalidInputError(`unexpected file in build result: ${f.name}`);
      } else if (succeeded) {
        const h = await readRpmHeader(blobs.pathOf(f.sha256));
        const b: StoredBinary = {
          filename: f.name,
          name: h.name,
          version: h.version,
          release: h.release,
          arch: h.arch,
          isSource: h.isSource,
          provides: h.provides,
          requires: h.requires,
          conflicts: h.conflicts,
          obsoletes: h.obsoletes,
          hdrmd5: h.hdrmd5,
          leadsigmd5: h.leadsigmd5,
          sha256: f.sha256,
          md5: f.md5,
          size: f.size,
        };
        if (h.epoch !== undefined) b.epoch = h.epoch;
        if (h.sourceRpm !== undefined) b.sourceRpm = h.sourceRpm;
        if (h.source !== undefined) b.source = h.source;
        if (h.recommends?.length) b.recommends = h.recommends;
        if (h.supplements?.length) b.supplements = h.supplements;
        if (h.suggests?.length) b.suggests = h.suggests;
        if (h.enhances?.length) b.enhances = h.enhances;
        if (h.buildTime !== undefined) b.buildTime = h.buildTime;
        out.binaries.push(b);
      }
    }
    return out;
  };

  /** Verifies a result against the dispatcher's job and stores it. */
  const storeResult = async (msg: Extract<RepoRequest, { type: "result.put" }>): Promise<{ stored: boolean }> => {
    const a = msg.args;
    const found = await dispatcher.call("job.get", { jobId: a.jobId }, { idempotent: true });
    if (!found) throw new ConflictError(`job ${a.jobId} is unknown (superseded or aborted): result not stored`);
    if (found.workerId !== a.workerId)
      throw new ConflictError(`job ${a.jobId} is not assigned to worker ${a.workerId}`);
    const job = found.job;
    if (
      job.project !== a.project ||
      job.repository !== a.repository ||
      job.arch !== a.arch ||
      job.package !== a.package
    ) {
      throw new ConflictError(
        `job ${a.jobId} builds ${job.name}, not ${a.project}/${a.repository}/${a.arch}/${a.package}`
      );
    }
    const succeeded = a.code === BuildResultCode.Succeeded;
    const files = await readUpload(a.files, succeeded);
    if (files.meta) for (const b of files.binaries) b.metaSha256 = files.meta;
    const input: ResultInput = {
      project: job.project,
      repository: job.repository,
      arch: job.arch,
      package: job.package,
      jobId: job.jobId,
      srcmd5: job.srcmd5,
      verifymd5: job.verifymd5,
      rev: job.rev,
      versrel: job.versrel,
      bcnt: job.bcnt,
      release: job.release,
      reason: job.reason,
      readyTime: job.readyTime,
      workerId: a.workerId,
      code: a.code,
      startTime: a.startTime,
      endTime: a.endTime,
      binaries: files.binaries,
      ...(files.log ? { logSha256: files.log } : {}),
      ...(files.meta ? { metaSha256: files.meta } : {}),
      ...(files.stats ? { statsSha256: files.stats } : {}),
    };
    const outcome = await state.storeResult(input);
    await outbox.flush();
    log.info(
      {
        jobId: job.jobId,
        package: job.package,
        code: a.code,
        binaries: files.binaries.length,
        ...outcome.pool,
        importsTo: outcome.importsTo,
      },
      "result stored"
    );
    return { stored: true };
  };

  /** Reads of a result's files: no order to keep, so not queued behind the arch's writes. */
  const handleFile = async (msg: Extract<RepoRequest, { type: "file.stat" | "file.read" }>): Promise<void> => {
    switch (msg.type) {
      case "file.stat":
        return answer(msg.replyTo, async () => {
          const sha = await fileOf(msg, msg.args);
          const info = await blobs.stat(sha);
          if (!info) throw new NotFoundError(`the file with sha256 ${sha} is gone from the blob store`);
          return info;
        });
      case "file.read":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          return blobs.read(await fileOf(msg, a), a.offset, a.length);
        });
      default:
        assertNever(msg);
    }
  };

  const handleArch = async (msg: RepoRequest): Promise<void> => {
    switch (msg.type) {
      case "result.put":
        return answer(msg.replyTo, () => storeResult(msg));
      case "result.get":
        return answer(msg.replyTo, async (): Promise<ResultView | null> => {
          const a = msg.args;
          const may = await downloadable(msg, a, [a.package]);
          const r = state.result(a.project, a.repository, a.arch, a.package);
          if (!r || may(a.package)) return r ?? null;
          return { ...r, binaries: [], binariesWithheld: true };
        });
      case "result.list":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          await authorize(msg, AccessNeed.See, a);
          return state.results(a.project, a.repository, a.arch).map(({ binaries: _b, ...rest }) => rest);
        });
      case "result.wipe":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          await authorize(msg, AccessNeed.Write, a);
          const wiped = await state.wipe(a.project, a);
          await outbox.flush();
          log.info({ ...a, results: wiped.length }, "results wiped");
          return {
            wiped: wiped.map((w) => ({ repository: w.repository, arch: w.arch, package: w.package })),
          };
        });
      case "pool.get":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          const pool = state.pool(a.project, a.repository, a.arch);
          const may = await downloadable(
            msg,
            a,
            pool.map((b) => b.package)
          );
          return pool.filter((b) => may(b.package));
        });
      case "pool.page":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          const page = state.poolPage(a.project, a.repository, a.arch, a.after, a.limit);
          const may = await downloadable(
            msg,
            a,
            page.binaries.map((b) => b.package)
          );
          const binaries = page.binaries.filter((b) => may(b.package));
          if (binaries.length === page.binaries.length) return page;
          return { ...page, binaries, withheld: page.binaries.length - binaries.length };
        });
      case "pool.rebuild":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          await authorize(msg, AccessNeed.Write, a);
          const r = await state.rebuildPool(a.project, a.repository, a.arch, { deep: a.deep === true });
          await outbox.flush();
          log.info({ ...a, ...r }, "pool rebuilt");
          return r;
        });
      case "binaries.list":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          await authorize(msg, AccessNeed.Binaries, a);
          const r = state.result(a.project, a.repository, a.arch, a.package);
          const imports = state.imports(a.project, a.repository, a.arch, a.package);
          if (!r && imports.length === 0) {
            throw new NotFoundError(`no build result of ${a.package} in ${a.project}/${a.repository}/${a.arch}`);
          }
          const list = (r?.binaries ?? []).map((b) => ({
            filename: b.filename,
            size: b.size,
            sha256: b.sha256,
            md5: b.md5,
            mtime: r!.endTime,
          }));
          for (const imp of imports) {
            for (const b of imp.binaries) {
              list.push({ filename: b.filename, size: b.size, sha256: b.sha256, md5: b.md5, mtime: imp.time });
            }
          }
          return list;
        });
      case "history.build":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          await authorize(msg, AccessNeed.See, a);
          return state.buildHistory(a.project, a.repository, a.arch, a.package, a.limit);
        });
      case "relsync.get":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          await authorize(msg, AccessNeed.See, a);
          return state.relsync(a.project, a.repository);
        });
      case "history.jobs":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          await authorize(msg, AccessNeed.See, a);
          return state.jobHistory(a.project, a.repository, a.arch, a.package, a.limit);
        });
      case "publish.project":
        return answer(msg.replyTo, async () => {
          await authorize(msg, AccessNeed.See, msg.args);
          await state.ensureFlags(msg.args.project, []);
          return state.publishProject(msg.args.project);
        });
      case "publish.select":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          // The page names every binary's content: as much as a download list.
          await authorize(msg, AccessNeed.Binaries, a);
          await state.ensureFlags(a.project, state.packagesIn(a.project, a.repository, a.arch));
          return state.publishPage(a.project, a.repository, a.arch, a.after, a.limit);
        });
      case "file.stat":
      case "file.read":
        return handleFile(msg);
      case "blob.stat":
      case "blob.read":
      case "upload.begin":
      case "upload.chunk":
      case "upload.commit":
      case "upload.abort":
      case "upload.put":
        return answer(msg.replyTo, noBlobArgs);
      default:
        assertNever(msg);
    }
  };

  // ---- source events -------------------------------------------------------------------------

  const onEvent = async (e: SourceEvent | RepoEvent | EventBase): Promise<void> => {
    const ev = e as SourceEvent | RepoEvent;
    switch (ev.type) {
      case "project.meta-changed": {
        const meta = await lookups.project(ev.project);
        // Gone again: its deletion event follows.
        if (!meta) return;
        const counts = await state.setProjectMeta(ev.project, meta);
        await outbox.flush();
        log.debug({ project: ev.project, ...counts }, "project flags applied");
        return;
      }
      case "package.meta-changed": {
        const meta = await lookups.package(ev.project, ev.package);
        if (!meta) return;
        const counts = await state.setPackageMeta(ev.project, ev.package, meta);
        await outbox.flush();
        log.debug({ project: ev.project, package: ev.package, ...counts }, "package flags applied");
        return;
      }
      case "project.config-changed": {
        const counts = await state.configChanged(ev.project);
        await outbox.flush();
        log.debug({ project: ev.project, ...counts }, "build config applied");
        return;
      }
      case "package.deleted":
        await state.deletePackage(ev.project, ev.package);
        await outbox.flush();
        return;
      case "project.deleted":
        await state.deleteProject(ev.project);
        await outbox.flush();
        return;
      default:
        return;
    }
  };

  // ---- actors --------------------------------------------------------------------------------

  const archActor = (parent: Ref<unknown>, name: string): Ref<RepoRequest> =>
    spawn(
      parent,
      async (_s: undefined, msg: RepoRequest) => {
        await handleArch(msg);
        return undefined;
      },
      name,
      { onCrash: (_m, err, c) => (log.error({ err }, "repo arch actor crashed"), c.resume) }
    );

  let children: Children<RepoRequest> | undefined;
  const root = spawn(
    ctx.system,
    (_s: undefined, msg: BridgedRequest | { type: "children.sweep" }, actx) => {
      children ??= new Children<RepoRequest>((name) => archActor(actx.self, name));
      if (msg.type === "children.sweep") {
        children.sweep(stop);
        return undefined;
      }
      const req = validated(validators, msg as BridgedRequest);
      if (!req) return undefined;
      if (req.type === "file.stat" || req.type === "file.read") {
        void handleFile(req);
        return undefined;
      }
      const a = req.args as { project: string; repository?: string; arch?: string };
      // Project-wide requests share one actor per project.
      const key =
        a.repository !== undefined && a.arch !== undefined && req.type !== "result.wipe"
          ? `${a.project}\u0000${a.repository}\u0000${a.arch}`
          : `${a.project}\u0000`;
      dispatch(children.get(key), req);
      return undefined;
    },
    "repo"
  );
  const sweep = setInterval(() => dispatch(root, { type: "children.sweep" }), 60_000);
  const consumer: EventConsumer = await consumeEvents<SourceEvent | RepoEvent>(ctx.nc, {
    durable: "repo",
    filterSubject: subjects.eventsAll(),
    handler: onEvent,
    log,
  });
  const sub = bridgeActor(ctx.nc, root as unknown as Ref<BridgedRequest>, {
    subject: subjects.rpcAll(Role.Repo),
    queue: Role.Repo,
    prefixTokens: 3,
    log,
    direct: { types: BLOB_VERBS, handler: blobHandler(blobs, blobs) },
    queryTimeoutMs: 60_000,
  });
  const stopPing = answerPings(ctx.nc, () => pingInfo("repo", ctx.nodeId, startedAt));
  log.info({}, "repo role started");
  return {
    role: "repo",
    async stop(): Promise<void> {
      clearInterval(sweep);
      stopPing();
      await sub.drain();
      await consumer.stop();
      await outbox.stop();
      await blobs.close();
      await store.close();
      await lease.release();
      log.info({}, "repo role stopped");
    },
  };
}
