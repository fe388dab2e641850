/**
 * The repo role: build results, the build pool, and downloads of binaries and logs.
 *
 * RepoServer (the root actor) validates requests and routes each to the RepoArchResults actor of
 * its project/repository/arch, so all writes of one repository/arch are serialised. A result is
 * stored and the pool updated in one LMDB transaction together with the `repo.built` and
 * `repo.pool-changed` events (outbox), which are published after commit and re-sent after a
 * crash until the stream acknowledged them.
 */
import path from "node:path";
import { dispatch, spawn, stop, type Ref } from "nact";
import {
  BLOB_VERBS,
  ConflictError,
  InvalidInputError,
  NotFoundError,
  Role,
  RoleClient,
  blobHandler,
  bridgeActor,
  ensureEventStream,
  makeEvent,
  publishEvent,
  subjects,
  type BridgedRequest,
} from "../../transport/index.ts";
import { BlobStore, Outbox, RoleStore, keys } from "../../storage/index.ts";
import { Children, answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { BuildResultCode, type PoolBinary } from "../common/model.ts";
import { acquireLease, answerPings, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import { arr, int, md5, obj, oneOf, sha256, str } from "../common/validate.ts";
import type { DispatcherApi } from "../dispatcher/protocol.ts";
import { validateFileName } from "../common/names.ts";
import { queryRpm } from "./rpm-query.ts";
import { computePoolSimple } from "./pool-simple.ts";
import type { RepoApi, RepoEvent, RepoRequest, StoredBinary, StoredResult, UploadedFile } from "./protocol.ts";

const prpaKey = (p: string, r: string, a: string): string => `${p}\u0000${r}\u0000${a}`;

const where = (raw: unknown): { project: string; repository: string; arch: string } => {
  const o = obj(raw);
  return { project: str(o, "project"), repository: str(o, "repository"), arch: str(o, "arch") };
};

const noBlobArgs = (): never => {
  throw new InvalidInputError("blob verbs are served directly");
};

const validators: Validators<RepoApi> = {
  "result.put": (raw) => {
    const o = obj(raw);
    return {
      ...where(raw),
      package: str(o, "package"),
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
  "result.get": (raw) => ({ ...where(raw), package: str(obj(raw), "package") }),
  "result.list": where,
  "pool.get": where,
  "binaries.list": (raw) => ({ ...where(raw), package: str(obj(raw), "package") }),
  "blob.stat": noBlobArgs,
  "blob.read": noBlobArgs,
  "upload.begin": noBlobArgs,
  "upload.chunk": noBlobArgs,
  "upload.commit": noBlobArgs,
  "upload.abort": noBlobArgs,
};

export interface RepoRoleOptions {
  /** Largest accepted uploaded file. @default 4 GiB */
  maxBlobBytes?: number;
}

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
  const startedAt = Date.now();

  /** Stores a result and updates the pool of its repository/arch in one transaction. */
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
    const rk = keys.result(job.project, job.repository, job.arch, job.package);
    const prev = store.get<StoredResult>(rk);

    let logSha256: string | undefined;
    let metaSha256: string | undefined;
    let statsSha256: string | undefined;
    const binaries: StoredBinary[] = [];
    for (const f of a.files) {
      const info = await blobs.stat(f.sha256);
      if (!info || info.md5 !== f.md5 || info.size !== f.size) {
        throw new InvalidInputError(`uploaded file ${f.name} is missing or does not match its checksum`);
      }
      if (f.name === "_log") logSha256 = f.sha256;
      else if (f.name === "_meta") metaSha256 = f.sha256;
      else if (f.name === "_statistics") statsSha256 = f.sha256;
      else if (f.name.endsWith(".rpm")) {
        const hdr = await queryRpm(blobs.pathOf(f.sha256));
        binaries.push({
          ...hdr.info,
          filename: f.name,
          sha256: f.sha256,
          md5: f.md5,
          size: f.size,
          isSource: hdr.isSource,
        });
      } else {
        throw new InvalidInputError(`unexpected file in build result: ${f.name}`);
      }
    }
    const succeeded = a.code === BuildResultCode.Succeeded;
    const unchanged = a.code === BuildResultCode.Unchanged;
    const result: StoredResult = {
      project: job.project,
      repository: job.repository,
      arch: job.arch,
      package: job.package,
      code: a.code,
      jobId: job.jobId,
      srcmd5: job.srcmd5,
      verifymd5: job.verifymd5,
      rev: job.rev,
      versrel: job.versrel,
      bcnt: job.bcnt,
      release: job.release,
      reason: job.reason,
      workerId: a.workerId,
      readyTime: job.readyTime,
      startTime: a.startTime,
      endTime: a.endTime,
      // A failed or unchanged build keeps the binaries of the last successful one.
      binaries: succeeded ? binaries : (prev?.binaries ?? []),
      ...(logSha256 ? { logSha256 } : {}),
      ...(metaSha256 ? { metaSha256 } : {}),
      ...(statsSha256 ? { statsSha256 } : {}),
    };
    const poolPrefix = keys.poolOf(job.project, job.repository, job.arch);
    await store.transact(() => {
      void store.db.put(rk, result);
      const seq = store.nextSeq(`bhist:${job.project}/${job.repository}/${job.arch}/${job.package}`);
      void store.db.put(keys.buildHistory(job.project, job.repository, job.arch, job.package, seq), {
        versrel: job.versrel,
        bcnt: job.bcnt,
        srcmd5: job.srcmd5,
        rev: job.rev,
        time: a.endTime,
        duration: a.endTime - a.startTime,
        code: a.code,
        workerId: a.workerId,
        reason: job.reason,
      });
      const results = new Map<string, StoredResult>();
      for (const { value } of store.scan<StoredResult>(keys.resultsOf(job.project, job.repository, job.arch))) {
        results.set(value.package, value);
      }
      const next = computePoolSimple(results);
      const old = new Map<string, PoolBinary>();
      for (const { value } of store.scan<PoolBinary>(poolPrefix)) old.set(value.name, value);
      const added: PoolBinary[] = [];
      const removed: { name: string; package: string; filename: string }[] = [];
      for (const [name, b] of next) {
        const o = old.get(name);
        if (!o || o.sha256 !== b.sha256 || o.package !== b.package || o.metaSha256 !== b.metaSha256) {
          if (o) removed.push({ name, package: o.package, filename: o.filename });
          added.push(b);
          void store.db.put(keys.poolEntry(job.project, job.repository, job.arch, name), b);
        }
      }
      for (const [name, o] of old) {
        if (!next.has(name)) {
          removed.push({ name, package: o.package, filename: o.filename });
          void store.db.remove(keys.poolEntry(job.project, job.repository, job.arch, name));
        }
      }
      outbox.add(
        makeEvent<RepoEvent>({
          type: "repo.built",
          project: job.project,
          package: job.package,
          repository: job.repository,
          arch: job.arch,
          jobId: job.jobId,
          code: a.code,
          srcmd5: job.srcmd5,
          versrel: job.versrel,
          bcnt: job.bcnt,
          ...(metaSha256 ? { metaSha256 } : {}),
        })
      );
      if (added.length || removed.length) {
        outbox.add(
          makeEvent<RepoEvent>({
            type: "repo.pool-changed",
            project: job.project,
            repository: job.repository,
            arch: job.arch,
            added,
            removed,
          })
        );
      }
    });
    await outbox.flush();
    log.info(
      { jobId: job.jobId, package: job.package, code: a.code, binaries: binaries.length, unchanged },
      "result stored"
    );
    return { stored: true };
  };

  const handleArch = async (msg: RepoRequest): Promise<void> => {
    switch (msg.type) {
      case "result.put":
        return answer(msg.replyTo, () => storeResult(msg));
      case "result.get":
        return answer(msg.replyTo, () => {
          const a = msg.args;
          return store.get<StoredResult>(keys.result(a.project, a.repository, a.arch, a.package)) ?? null;
        });
      case "result.list":
        return answer(msg.replyTo, () =>
          [...store.scan<StoredResult>(keys.resultsOf(msg.args.project, msg.args.repository, msg.args.arch))].map(
            ({ value }) => {
              const { binaries: _b, ...rest } = value;
              return rest;
            }
          )
        );
      case "pool.get":
        return answer(msg.replyTo, () =>
          [...store.scan<PoolBinary>(keys.poolOf(msg.args.project, msg.args.repository, msg.args.arch))].map(
            (e) => e.value
          )
        );
      case "binaries.list":
        return answer(msg.replyTo, () => {
          const a = msg.args;
          const r = store.get<StoredResult>(keys.result(a.project, a.repository, a.arch, a.package));
          if (!r) throw new NotFoundError(`no build result of ${a.package} in ${a.project}/${a.repository}/${a.arch}`);
          return r.binaries.map((b) => ({
            filename: b.filename,
            size: b.size,
            sha256: b.sha256,
            md5: b.md5,
            mtime: r.endTime,
          }));
        });
      case "blob.stat":
      case "blob.read":
      case "upload.begin":
      case "upload.chunk":
      case "upload.commit":
      case "upload.abort":
        return answer(msg.replyTo, noBlobArgs);
      default:
        assertNever(msg);
    }
  };

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
      const a = req.args as { project: string; repository: string; arch: string };
      dispatch(children.get(prpaKey(a.project, a.repository, a.arch)), req);
      return undefined;
    },
    "repo"
  );
  const sweep = setInterval(() => dispatch(root, { type: "children.sweep" }), 60_000);
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
      await blobs.close();
      await store.close();
      await lease.release();
      log.info({}, "repo role stopped");
    },
  };
}
