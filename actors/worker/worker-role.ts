/**
 * A worker: one build host's slots. It registers with the dispatcher and heartbeats; it accepts
 * jobs up to its slot count, builds each in the sandbox, streams the log live on
 * `kiln.log.<jobId>`, uploads the results to the repo role, and reports the job done.
 *
 * The Worker actor owns the slot bookkeeping; the builds themselves run outside its mailbox and
 * report back with `build.ended`, so the worker keeps answering (heartbeats, aborts, log reads)
 * while it builds.
 */
import { appendFile, mkdir, open as openFile, readFile, rm, stat, writeFile, link, copyFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { dispatch, spawn, type Ref } from "nact";
import {
  IntegrityError,
  InvalidInputError,
  Role,
  RoleClient,
  bridgeActor,
  downloadBlob,
  publishLogChunk,
  subjects,
  uploadFile,
  type BlobApi,
  type BlobInfo,
  type BridgedRequest,
} from "../../transport/index.ts";
import { cleanBuildRoot, runRpmBuild, DEFAULT_LIMITS, type SandboxLimits } from "../../sandbox/index.ts";
import { answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { depMetaLines, genMeta, parseMeta, renderMeta } from "../common/build-meta.ts";
import { BuildResultCode, type BuildJob } from "../common/model.ts";
import { answerPings, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import { int, obj, optStr, str } from "../common/validate.ts";
import { validateJob } from "../dispatcher/job-validate.ts";
import type { DispatcherApi, WorkerRegistration } from "../dispatcher/protocol.ts";
import type { RepoApi, UploadedFile } from "../repo/protocol.ts";
import { ContentCache } from "./cache.ts";
import type { WorkerApi, WorkerMsg, WorkerRequest } from "./protocol.ts";

export interface WorkerOptions {
  /** @default `<hostname>:<n>` */
  workerId: string;
  /** Archs this worker builds. @default the host arch */
  archs?: string[];
  /** Build slots. @default 1 */
  jobs?: number;
  hostLabels?: string[];
  memoryMb?: number;
  diskMb?: number;
  /** Cache of sources and binaries. @default `<dataDir>/worker/<id>/cache` */
  cacheDir?: string;
  /** @default 2048 */
  cacheSizeMb?: number;
  limits?: Partial<SandboxLimits>;
  /** Host paths a build must never see besides the defaults (kiln's data dir is always hidden). */
  hiddenPaths?: string[];
}

interface Running {
  job: BuildJob;
  abort: AbortController;
  logFile: string;
  logSize: number;
  done: boolean;
}

/** The host's arch as rpm names it. */
export function hostArch(): string {
  const m: Record<string, string> = {
    x64: "x86_64",
    arm64: "aarch64",
    ia32: "i586",
    ppc64: "ppc64le",
    s390x: "s390x",
    riscv64: "riscv64",
  };
  return m[os.arch()] ?? os.arch();
}

/** Archs a host can build (a subset of OBS's BSCando table). */
export function buildableArchs(host: string): string[] {
  const table: Record<string, string[]> = {
    x86_64: ["x86_64", "i586", "i686"],
    aarch64: ["aarch64"],
    ppc64le: ["ppc64le"],
    s390x: ["s390x"],
    riscv64: ["riscv64"],
  };
  return table[host] ?? [host];
}

const validators: Validators<WorkerApi> = {
  "job.assign": (raw) => ({ job: validateJob(obj(raw).job) }),
  "job.abort": (raw) => {
    const o = obj(raw);
    const r: { jobId: string; reason?: string } = { jobId: str(o, "jobId") };
    const reason = optStr(o, "reason");
    if (reason !== undefined) r.reason = reason;
    return r;
  },
  "log.read": (raw) => {
    const o = obj(raw);
    return {
      jobId: str(o, "jobId"),
      offset: int(o, "offset", { min: 0 }),
      length: int(o, "length", { min: 0, max: 4 << 20 }),
    };
  },
  "worker.info": () => ({}),
};

export async function startWorker(ctx: RoleContext, opts: WorkerOptions): Promise<RunningRole> {
  const workerId = opts.workerId;
  const log = ctx.log.child({ role: "worker", workerId });
  const base = path.join(ctx.dataDir, "worker", workerId.replace(/[^A-Za-z0-9_.-]/g, "_"));
  const jobsDir = path.join(base, "jobs");
  await rm(jobsDir, { recursive: true, force: true });
  await mkdir(jobsDir, { recursive: true });
  const cacheDir = opts.cacheDir ?? path.join(base, "cache");
  const cache = new ContentCache(cacheDir, (opts.cacheSizeMb ?? 2048) * 1024 * 1024, log);
  const limits: SandboxLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const hiddenPaths = [ctx.dataDir, cacheDir, ...(opts.hiddenPaths ?? [])];
  const slots = opts.jobs ?? 1;
  const host = hostArch();
  const registration: WorkerRegistration = {
    workerId,
    hostArch: host,
    buildArchs: opts.archs ?? buildableArchs(host),
    hostLabels: opts.hostLabels ?? [],
    sandbox: "bwrap",
    linux: { version: os.release() },
    cpuFlags: await cpuFlags(),
    processors: os.cpus().length,
    jobs: slots,
    memoryMb: opts.memoryMb ?? Math.floor(os.totalmem() / 1024 / 1024),
    swapMb: 0,
    diskMb: opts.diskMb ?? 65536,
  };
  const dispatcher = new RoleClient<DispatcherApi>(ctx.rpc, (t) => subjects.rpc(Role.Dispatcher, t));
  const repo = new RoleClient<RepoApi>(ctx.rpc, (t) => subjects.rpc(Role.Repo, t));
  const source = new RoleClient<BlobApi>(ctx.rpc, (t) => subjects.rpc(Role.Source, t));
  const running = new Map<string, Running>();
  const startedAt = Date.now();
  let heartbeatMs = 2000;
  let stopping = false;

  const fetchInto = async (client: RoleClient<BlobApi>, sha256: string, dest: string, md5?: string): Promise<void> => {
    const cached = await cache.get(sha256, (p) =>
      downloadBlob(client, sha256, p).then((info: BlobInfo) => {
        if (md5 && info.md5 !== md5) throw new IntegrityError(`content ${sha256} has md5 ${info.md5}, expected ${md5}`);
      })
    );
    await link(cached, dest).catch(() => copyFile(cached, dest));
  };

  /** Runs one job from download to reported result. Never throws. */
  const build = async (r: Running): Promise<BuildResultCode> => {
    const job = r.job;
    const jl = log.child({ jobId: job.jobId, package: job.package });
    const jobDir = path.join(jobsDir, job.jobId);
    const srcDir = path.join(jobDir, "sources");
    const depDir = path.join(jobDir, "deps");
    const outFiles: UploadedFile[] = [];
    const startTime = Date.now();
    let code: BuildResultCode = BuildResultCode.Failed;
    const emit = (text: string): void => {
      const data = Buffer.from(text);
      onLog(data);
    };
    let pendingWrite = Promise.resolve();
    const onLog = (chunk: Buffer): void => {
      const offset = r.logSize;
      r.logSize += chunk.length;
      pendingWrite = pendingWrite.then(() => appendFile(r.logFile, chunk)).catch(() => undefined);
      publishLogChunk(ctx.nc, job.jobId, { offset, data: chunk });
    };
    try {
      await mkdir(srcDir, { recursive: true });
      await mkdir(depDir, { recursive: true });
      await writeFile(r.logFile, "");
      emit(`[kiln] building ${job.package} for ${job.project}/${job.repository}/${job.arch} on ${workerId}\n`);
      emit(`[kiln] reason: ${job.reason}; release ${job.release}\n`);
      for (const f of job.files) {
        if (f.name.includes("/") || f.name === "." || f.name === "..")
          throw new InvalidInputError(`bad source file name ${f.name}`);
        await fetchInto(source, f.sha256, path.join(srcDir, f.name), f.md5);
      }
      const depPaths: string[] = [];
      const metaLines: string[] = [];
      for (const d of job.bdeps) {
        const p = path.join(depDir, `${d.name}.rpm`);
        await fetchInto(repo, d.sha256, p);
        depPaths.push(p);
        if (d.notmeta) continue;
        let producer: string[] | undefined;
        if (d.metaSha256) {
          const mp = path.join(depDir, `${d.name}.meta`);
          await fetchInto(repo, d.metaSha256, mp);
          producer = parseMeta(await readFile(mp, "utf8"));
        }
        metaLines.push(...depMetaLines(d.name, d.hdrmd5, producer, job.package));
      }
      emit(
        `[kiln] ${job.files.length} source files, ${depPaths.length} build dependencies (cache hits ${cache.hits}, misses ${cache.misses})\n`
      );
      const meta = genMeta(`${job.verifymd5}  ${job.package}`, job.subpacks, metaLines);
      await writeFile(path.join(jobDir, "_meta"), renderMeta(meta));
      const defines: Record<string, string> = {
        release: job.release,
        disturl: job.disturl,
        vendor: "kiln",
        distribution: `${job.project} / ${job.repository}`,
      };
      if (!job.debuginfo) defines.debug_package = "%{nil}";
      const outcome = await runRpmBuild({
        jobDir: path.join(jobDir, "root"),
        sourcesDir: srcDir,
        specFile: job.specFile,
        dependencyRpms: depPaths,
        defines,
        limits,
        onLog,
        signal: r.abort.signal,
        log: jl,
        hiddenPaths,
      });
      const stats = { ...outcome.stats, cacheHits: cache.hits, cacheMisses: cache.misses };
      await writeFile(path.join(jobDir, "_statistics"), JSON.stringify(stats, null, 2));
      if (r.abort.signal.aborted) {
        jl.info({ reason: String(r.abort.signal.reason) }, "build aborted");
        return BuildResultCode.Failed;
      }
      switch (outcome.type) {
        case "build.succeeded":
          code = BuildResultCode.Succeeded;
          for (const f of [...outcome.srpms, ...outcome.rpms]) outFiles.push(await upload(f, path.basename(f)));
          emit(`[kiln] build succeeded: ${outcome.rpms.length} rpms, ${outcome.srpms.length} srpms\n`);
          break;
        case "build.failed":
          code = BuildResultCode.Failed;
          emit(`[kiln] build failed: ${outcome.reason}\n`);
          break;
        default:
          assertNever(outcome);
      }
      outFiles.push(await upload(path.join(jobDir, "_meta"), "_meta"));
      outFiles.push(await upload(path.join(jobDir, "_statistics"), "_statistics"));
    } catch (err) {
      if (r.abort.signal.aborted) return BuildResultCode.Failed;
      code = BuildResultCode.Failed;
      jl.warn({ err }, "build setup failed");
      emit(`[kiln] build could not run: ${(err as Error).message}\n`);
    }
    try {
      emit(`[kiln] finished: ${code}\n`);
      await pendingWrite;
      publishLogChunk(ctx.nc, job.jobId, { offset: r.logSize, data: new Uint8Array(0), eof: true });
      outFiles.push(await upload(r.logFile, "_log"));
      await repo.call(
        "result.put",
        {
          project: job.project,
          repository: job.repository,
          arch: job.arch,
          package: job.package,
          jobId: job.jobId,
          workerId,
          code,
          files: outFiles,
          startTime,
          endTime: Date.now(),
        },
        { timeoutMs: 120_000 }
      );
      await dispatcher.call("job.done", { jobId: job.jobId, workerId, result: code }, { idempotent: true });
      jl.info({ code }, "job reported");
    } catch (err) {
      // The job stays with the dispatcher, which re-queues it if it is still wanted.
      jl.warn({ err }, "job result not delivered");
    } finally {
      await cleanBuildRoot(path.join(jobDir, "root")).catch(() => undefined);
      await rm(jobDir, { recursive: true, force: true }).catch(() => undefined);
    }
    return code;
  };

  const upload = async (file: string, name: string): Promise<UploadedFile> => {
    const info = await uploadFile(repo, file, { size: (await stat(file)).size });
    return { name, sha256: info.sha256, md5: info.md5, size: info.size };
  };

  const handle = async (msg: WorkerMsg, self: Ref<WorkerMsg>): Promise<void> => {
    switch (msg.type) {
      case "job.assign":
        return answer(msg.replyTo, () => {
          const job = msg.args.job;
          if (running.has(job.jobId)) return { accepted: true };
          if (stopping) return { accepted: false, reason: "worker is stopping" };
          if (running.size >= slots) return { accepted: false, reason: "no free slot" };
          if (!registration.buildArchs.includes(job.arch))
            return { accepted: false, reason: `cannot build ${job.arch}` };
          const r: Running = {
            job,
            abort: new AbortController(),
            logFile: path.join(jobsDir, `${job.jobId}.log`),
            logSize: 0,
            done: false,
          };
          running.set(job.jobId, r);
          log.info({ jobId: job.jobId, name: job.name }, "job accepted");
          void build(r).then((result) => dispatch(self, { type: "build.ended", jobId: job.jobId, result }));
          return { accepted: true };
        });
      case "job.abort":
        return answer(msg.replyTo, () => {
          const r = running.get(msg.args.jobId);
          if (!r) return { aborted: false };
          log.info({ jobId: msg.args.jobId, reason: msg.args.reason }, "job abort requested");
          r.abort.abort(new Error(msg.args.reason ?? "aborted"));
          return { aborted: true };
        });
      case "log.read":
        return answer(msg.replyTo, async () => {
          const r = running.get(msg.args.jobId);
          if (!r) return null;
          const fh = await openFile(r.logFile, "r").catch(() => undefined);
          if (!fh) return { data: new Uint8Array(0), size: r.logSize, done: r.done };
          try {
            const size = (await fh.stat()).size;
            const len = Math.max(0, Math.min(msg.args.length, size - msg.args.offset));
            const buf = Buffer.alloc(len);
            if (len > 0) await fh.read(buf, 0, len, msg.args.offset);
            return { data: buf, size, done: r.done };
          } finally {
            await fh.close();
          }
        });
      case "worker.info":
        return answer(msg.replyTo, () => ({ workerId, running: [...running.keys()], slots }));
      case "build.ended": {
        const r = running.get(msg.jobId);
        if (r) {
          r.done = true;
          running.delete(msg.jobId);
          await rm(r.logFile, { force: true }).catch(() => undefined);
        }
        dispatch(self, { type: "dispatcher.heartbeat" });
        return;
      }
      case "dispatcher.heartbeat": {
        if (stopping) return;
        try {
          const res = await dispatcher.call(
            "worker.heartbeat",
            { workerId, running: [...running.keys()] },
            { timeoutMs: 3000 }
          );
          if (!res.known) {
            heartbeatMs = (await dispatcher.call("worker.register", registration, { timeoutMs: 3000 })).heartbeatMs;
          }
          for (const jobId of res.abort) running.get(jobId)?.abort.abort(new Error("job no longer assigned here"));
        } catch (err) {
          log.debug({ err }, "heartbeat failed");
        }
        return;
      }
      default:
        assertNever(msg);
    }
  };

  const actor = spawn(
    ctx.system,
    async (_s: undefined, msg: WorkerMsg | BridgedRequest, actx) => {
      const self = actx.self as Ref<WorkerMsg>;
      if ("subject" in msg) {
        const req = validated(validators, msg);
        if (req) await handle(req as WorkerRequest, self);
      } else {
        await handle(msg, self);
      }
      return undefined;
    },
    `worker-${workerId.replace(/[^a-zA-Z0-9_-]/g, "_")}`,
    { onCrash: (_m, err, c) => (log.error({ err }, "worker actor crashed"), c.resume) }
  );
  const sub = bridgeActor(ctx.nc, actor as unknown as Ref<BridgedRequest>, {
    subject: subjects.workerAll(workerId),
    prefixTokens: 4,
    log,
  });
  let beat: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    beat = setTimeout(() => {
      dispatch(actor, { type: "dispatcher.heartbeat" });
      schedule();
    }, heartbeatMs);
  };
  // Register in the background: the dispatcher may start after us.
  dispatch(actor, { type: "dispatcher.heartbeat" });
  schedule();
  const stopPing = answerPings(ctx.nc, () =>
    pingInfo("worker", ctx.nodeId, startedAt, {
      workerId,
      state: running.size ? "building" : "idle",
      jobs: [...running.values()].map((r) => r.job.name),
      slots,
    })
  );
  log.info({ archs: registration.buildArchs, slots }, "worker started");
  return {
    role: `worker:${workerId}`,
    async stop(): Promise<void> {
      stopping = true;
      if (beat) clearTimeout(beat);
      stopPing();
      for (const r of running.values()) r.abort.abort(new Error("worker stopping"));
      await sub.drain();
      await dispatcher.call("worker.leave", { workerId }, { timeoutMs: 2000 }).catch(() => undefined);
      log.info({}, "worker stopped");
    },
  };
}

async function cpuFlags(): Promise<string[]> {
  try {
    const text = await readFile("/proc/cpuinfo", "utf8");
    const line = text.split("\n").find((l) => l.startsWith("flags"));
    return line ? line.split(":")[1]!.trim().split(/\s+/) : [];
  } catch {
    return [];
  }
}
