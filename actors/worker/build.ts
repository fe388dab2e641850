/**
 * One job on a worker, from download to reported result (OBS bs_worker's build path):
 *
 * 1. fetch the sources (each verified against its md5, the whole tree against the job's srcmd5)
 *    and the dependency packages (sha256, size and hdrmd5) through the content cache, with the
 *    metas of the builds that produced them;
 * 2. write the build meta (obs-backend.md §4.5) and run the pre-build hooks;
 * 3. build in the sandbox with the job's release, disturl and debuginfo setting, the log going
 *    to a file and live to `kiln.log.<jobId>`;
 * 4. run the post-build hooks (build-compare may turn the result into `unchanged`);
 * 5. upload the packages, log, meta and `_statistics` in parallel, store the result in the repo
 *    role, report the job done to the dispatcher, and clean up.
 *
 * A job that a hook refuses, or that this host cannot sandbox, is handed back to the dispatcher
 * (`job.reject`) instead of failing: another worker may build it.
 */
import { chmodSync, createWriteStream, mkdirSync } from "node:fs";
import { chmod, copyFile, link, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { NatsConnection } from "nats";
import type { Logger } from "pino";
import {
  IntegrityError,
  InvalidInputError,
  downloadBlob,
  publishLogChunk,
  uploadFile,
  type BlobApi,
  type RoleClient,
} from "../../transport/index.ts";
import {
  BUILDTIME_SERVICE_OUTDIR,
  SandboxSetupError,
  cleanBuildRoot,
  runRpmBuild,
  type BuildOutcome,
  type BuildtimeServices,
  type SandboxLimits,
  type WrapperPool,
} from "../../sandbox/index.ts";
import { parseMeta, renderMeta } from "../common/build-meta.ts";
import { BuildResultCode, type BuildJob } from "../common/model.ts";
import type { DispatcherApi } from "../dispatcher/protocol.ts";
import type { RepoApi, UploadedFile } from "../repo/protocol.ts";
import { computeSrcmd5 } from "../source/srcmd5.ts";
import { DEFAULT_SERVICES_DIR, useServiceFileNames } from "../service/runner.ts";
import { serviceArgs } from "../service/service-xml.ts";
import type { ContentCache } from "./cache.ts";
import { HookStage, hooksForJob, runHook, writeJobFile, type HookConfig, type HookVerdict } from "./hooks.ts";
import { archBuild } from "./build-arch.ts";
import { jobLimits } from "./job-limits.ts";
import { jobMeta } from "./job-meta.ts";
import { readHdrMd5 } from "./rpm-sig.ts";
import { renderStatistics, type BuildStatistics } from "./statistics.ts";

/** What every build of one worker shares. */
export interface BuildEnv {
  workerId: string;
  nc: NatsConnection;
  log: Logger;
  cache: ContentCache;
  source: RoleClient<BlobApi>;
  repo: RoleClient<RepoApi>;
  /** The repo role with the worker's role identity, for reads access rules may restrict. */
  repoSigned: RoleClient<RepoApi>;
  dispatcher: RoleClient<DispatcherApi>;
  jobsDir: string;
  limits: SandboxLimits;
  hiddenPaths: string[];
  hooks: readonly HookConfig[];
  /** Programs of build-time source services. @default kiln's own (ops/services) */
  servicesDir?: string;
  /** What the worker announced (limits raised by constraints stay within it). */
  hardware: { memoryMb: number; diskMb: number };
  /** The host's arch as rpm names it: jobs of other archs build under a personality and --target. */
  hostArch: string;
  /** Where the next sandbox's wrapper is started ahead (builds and post-build hooks). */
  wrappers?: WrapperPool;
  /** Test seam: called as a file's upload progresses. */
  onUploadProgress?: (name: string, done: number, total: number) => void;
}

/** A job running on this worker. */
export interface RunningJob {
  job: BuildJob;
  abort: AbortController;
  /** Set by an abort that must not report anything (superseded, no longer ours, worker stopping). */
  discard: boolean;
  logFile: string;
  logSize: number;
  done: boolean;
  /** The result is stored and the dispatcher is being told: the slot may take the next job. */
  reporting?: boolean;
}

/** How a job ended on this worker. */
export type JobEnd =
  | { type: "job.reported"; code: BuildResultCode }
  | { type: "job.rejected"; reason: string; hostBad: boolean }
  | { type: "job.dropped"; why: string };

class Rejected extends Error {
  constructor(
    readonly reason: string,
    readonly hostBad: boolean
  ) {
    super(reason);
  }
}

const MAX_META_BYTES = 64 * 1024 * 1024;

/** Runs a job to its end; never throws. */
export async function runJob(env: BuildEnv, r: RunningJob): Promise<JobEnd> {
  const job = r.job;
  const log = env.log.child({ jobId: job.jobId, package: job.package });
  const jobDir = path.join(env.jobsDir, job.jobId);
  const srcDir = path.join(jobDir, "sources");
  const depDir = path.join(jobDir, "deps");
  const oldDir = path.join(jobDir, "old");
  const rootDir = path.join(jobDir, "root");
  const startTime = Date.now();
  const stats: BuildStatistics = {
    times: { totalMs: 0, downloadMs: 0, prebuildMs: 0, mainMs: 0, hooksMs: {} },
    download: { bytes: 0, binaries: 0, cacheHits: 0 },
  };

  // Every chunk goes to the log file (for `log.read` and the upload) and out live, in order.
  const logStream = createWriteStream(r.logFile, { flags: "w" });
  logStream.on("error", (err) => log.warn({ err }, "build log not written"));
  let logClosed: Promise<void> | undefined;
  const closeLog = (): Promise<void> =>
    (logClosed ??= new Promise<void>((resolve) => {
      logStream.end(() => resolve());
    }));
  const onLog = (chunk: Buffer): void => {
    if (logClosed) return;
    const offset = r.logSize;
    r.logSize += chunk.length;
    logStream.write(chunk);
    publishLogChunk(env.nc, job.jobId, { offset, data: chunk });
  };
  const emit = (text: string): void => onLog(Buffer.from(text));

  // `size` when the job says it: the download then needs no `blob.stat` first.
  const fetch = async (client: RoleClient<BlobApi>, sha256: string, dest: string, size?: number): Promise<void> => {
    let downloaded = false;
    const cached = await env.cache.get(sha256, async (p) => {
      const info = await downloadBlob(client, sha256, p, {
        signal: r.abort.signal,
        ...(size !== undefined ? { size } : {}),
      });
      env.cache.noteMd5(sha256, info.md5);
      stats.download.bytes += info.size;
      downloaded = true;
    });
    if (!downloaded) stats.download.cacheHits++;
    await link(cached, dest).catch(() => copyFile(cached, dest));
  };

  let code: BuildResultCode = BuildResultCode.Failed;
  let outcome: BuildOutcome | undefined;
  try {
    // Synchronous: metadata calls of microseconds each on every build's path, where each
    // asynchronous one would cost a thread-pool round trip.
    mkdirSync(jobDir, { recursive: true, mode: 0o700 });
    // The sandbox reads its inputs as an unprivileged uid ("other").
    for (const d of [srcDir, depDir, oldDir]) {
      mkdirSync(d, { recursive: true });
      chmodSync(d, 0o755);
    }
    emit(`[kiln] building ${job.package} for ${job.project}/${job.repository}/${job.arch} on ${env.workerId}\n`);
    emit(`[kiln] reason: ${job.reason}; release ${job.release}; job ${job.jobId}\n`);
    const arch = archBuild(env.hostArch, job.arch);
    if (arch.type === "arch.unsupported") throw new Rejected(arch.reason, false);
    if (arch.type === "arch.foreign") {
      emit(
        `[kiln] ${job.arch} on a ${env.hostArch} host: rpmbuild --target=${arch.target}${arch.personality ? ` under setarch ${arch.personality}` : ""}\n`
      );
    }

    // ---- 1. sources and dependencies ----------------------------------------------------------
    const t0 = Date.now();
    for (const f of job.files) {
      if (f.name.includes("/") || f.name === "." || f.name === ".." || f.name.includes("\0")) {
        throw new InvalidInputError(`bad source file name ${f.name}`);
      }
    }
    const fetchSources = Promise.all(
      job.files.map(async (f) => {
        const dest = path.join(srcDir, f.name);
        await fetch(env.source, f.sha256, dest, f.size);
        const md5 = await env.cache.md5Of(f.sha256);
        if (md5 !== f.md5) throw new IntegrityError(`source file ${f.name} has md5 ${md5}, expected ${f.md5}`);
        await chmod(dest, 0o644).catch(() => undefined);
      })
    );
    const metas = new Map<string, Promise<readonly string[]>>();
    const producerMeta = (sha: string): Promise<readonly string[]> => {
      let m = metas.get(sha);
      if (!m) {
        m = (async () => {
          const p = path.join(depDir, `.meta-${sha}`);
          await fetch(env.repo, sha, p);
          const st = await stat(p);
          if (st.size > MAX_META_BYTES) throw new IntegrityError(`build meta ${sha} is too large`);
          return parseMeta(await readFile(p, "utf8"));
        })();
        metas.set(sha, m);
      }
      return m;
    };
    const depPaths: string[] = [];
    const fetchDeps = Promise.all(
      job.bdeps.map(async (d, i) => {
        const p = path.join(depDir, `${String(i).padStart(5, "0")}-${d.name.replace(/[^A-Za-z0-9._+-]/g, "_")}.rpm`);
        depPaths[i] = p;
        await fetch(env.repo, d.sha256, p, d.size);
        const st = await stat(p);
        if (st.size !== d.size)
          throw new IntegrityError(`dependency ${d.name} has ${st.size} bytes, expected ${d.size}`);
        const hdrmd5 = await readHdrMd5(p);
        if (hdrmd5 !== undefined && hdrmd5 !== d.hdrmd5) {
          throw new IntegrityError(`dependency ${d.name} has hdrmd5 ${hdrmd5}, expected ${d.hdrmd5}`);
        }
        await chmod(p, 0o644).catch(() => undefined);
        if (d.metaSha256 && !d.notmeta) await producerMeta(d.metaSha256);
      })
    );
    await Promise.all([fetchSources, fetchDeps]);
    stats.download.binaries = job.bdeps.length;
    const srcmd5 = computeSrcmd5(job.files.map((f) => ({ name: f.name, md5: f.md5 })));
    if (srcmd5 !== job.verifymd5) {
      throw new IntegrityError(`the sources have srcmd5 ${srcmd5}, the job says ${job.verifymd5}`);
    }
    stats.times.downloadMs = Date.now() - t0;
    emit(
      `[kiln] ${job.files.length} source files (srcmd5 ${srcmd5} verified), ${depPaths.length} build dependencies (${stats.download.cacheHits} from the cache)\n`
    );
    await writeFile(path.join(jobDir, "_meta"), renderMeta(await jobMeta(job, producerMeta)));

    // ---- 2. pre-build hooks -------------------------------------------------------------------
    const hooks = hooksForJob(env.hooks, job.buildFlags);
    // The previous packages (for build-compare) arrive while the package builds.
    const previous = hooks.some((h) => h.stage === HookStage.Postbuild)
      ? fetchPrevious(env, job, oldDir, fetch)
      : Promise.resolve();
    const jobFile = hooks.length ? await writeJobFile(jobDir, job) : "";
    const limits = jobLimits(env.limits, job, env.hardware);
    const runHooks = async (stage: HookStage, extra: { rpms?: string; buildResult?: "succeeded" | "failed" }) => {
      let unchanged = false;
      for (const [i, h] of hooks.entries()) {
        if (h.stage !== stage) continue;
        const th = Date.now();
        emit(`[kiln] ${stage} hook ${h.name}\n`);
        const v: HookVerdict = await runHook(
          {
            hook: h,
            job,
            workerId: env.workerId,
            paths: {
              jobDir,
              sources: srcDir,
              deps: depDir,
              oldRpms: oldDir,
              log: r.logFile,
              ...(extra.rpms ? { rpms: extra.rpms } : {}),
            },
            jobFile,
            ...(extra.buildResult ? { buildResult: extra.buildResult } : {}),
            onOutput: onLog,
            signal: r.abort.signal,
            log,
            memoryBytes: limits.memoryBytes,
            ...(env.wrappers ? { wrappers: env.wrappers } : {}),
          },
          path.join(jobDir, `hook-${i}-${stage}`)
        );
        if (stage === HookStage.Prebuild) stats.times.prebuildMs += Date.now() - th;
        else stats.times.hooksMs[h.name] = (stats.times.hooksMs[h.name] ?? 0) + Date.now() - th;
        switch (v.type) {
          case "hook.ok":
            break;
          case "hook.unchanged":
            unchanged = true;
            break;
          case "hook.failed":
            return { failed: v.reason, unchanged };
          case "hook.reject":
            throw new Rejected(v.reason, v.hostBad);
          default:
            return v satisfies never;
        }
      }
      return { unchanged };
    };
    const pre = await runHooks(HookStage.Prebuild, {});
    if ("failed" in pre && pre.failed) {
      emit(`[kiln] ${pre.failed}\n`);
      throw new HookFailure(pre.failed);
    }

    // ---- 3. the build -------------------------------------------------------------------------
    // As OBS's build script: service files under the names the spec uses; the build-time
    // services then run in the build's own sandbox, just before rpmbuild.
    await useServiceFileNames(srcDir);
    let services: BuildtimeServices | undefined;
    if (job.buildtimeServices?.length) {
      emit(`[kiln] build-time services: ${job.buildtimeServices.map((s) => s.name).join(", ")}\n`);
      services = {
        dir: env.servicesDir ?? DEFAULT_SERVICES_DIR,
        calls: job.buildtimeServices.map((sv) => ({
          name: sv.name,
          args: serviceArgs(BUILDTIME_SERVICE_OUTDIR, sv.params),
        })),
        env: { OBS_SERVICE_PROJECT: job.project, OBS_SERVICE_PACKAGE: job.package },
      };
    }
    const defines: Record<string, string> = {
      release: job.release,
      disturl: job.disturl,
      distribution: `${job.project} / ${job.repository}`,
    };
    const tb = Date.now();
    outcome = await runRpmBuild({
      jobDir: rootDir,
      sourcesDir: srcDir,
      specFile: job.specFile,
      dependencyRpms: depPaths,
      defines,
      ...(job.macros ? { macros: job.macros } : {}),
      debuginfo: job.debuginfo,
      ...(services ? { services } : {}),
      // OBS's flag for specs that place their debuginfo package themselves.
      debugMagic: !(job.buildFlags ?? []).some((f) => /^rpm-nodebugmagic(:|$)/i.test(f)),
      limits,
      onLog,
      signal: r.abort.signal,
      log,
      hiddenPaths: env.hiddenPaths,
      ...(env.wrappers ? { wrappers: env.wrappers } : {}),
      ...(arch.type === "arch.foreign" ? { target: arch.target } : {}),
      ...(arch.type === "arch.foreign" && arch.personality ? { personality: arch.personality } : {}),
    });
    stats.times.mainMs = Date.now() - tb;
    if (outcome.stats.peakMemoryBytes !== undefined) stats.peakMemoryBytes = outcome.stats.peakMemoryBytes;
    if (outcome.stats.diskBytes !== undefined) stats.diskBytes = outcome.stats.diskBytes;
    if (r.discard) throw new Error("aborted");
    const ok = outcome.type === "build.succeeded";
    emit(
      ok
        ? `[kiln] build succeeded: ${outcome.type === "build.succeeded" ? outcome.rpms.length : 0} packages and a source package\n`
        : `[kiln] build failed: ${outcome.type === "build.failed" ? outcome.reason : ""}\n`
    );

    // ---- 4. post-build hooks ------------------------------------------------------------------
    let unchanged = false;
    let hookFailure: string | undefined;
    if (hooks.some((h) => h.stage === HookStage.Postbuild) && !r.abort.signal.aborted) {
      await previous;
      const post = await runHooks(HookStage.Postbuild, {
        ...(ok ? { rpms: path.join(rootDir, "build", "out") } : {}),
        buildResult: ok ? "succeeded" : "failed",
      });
      unchanged = post.unchanged;
      if ("failed" in post && post.failed) hookFailure = post.failed;
    }
    if (r.discard) throw new Error("aborted");
    if (!ok) code = BuildResultCode.Failed;
    else if (hookFailure) {
      code = BuildResultCode.Failed;
      emit(`[kiln] ${hookFailure}\n`);
    } else if (unchanged && (await previousExists(oldDir))) {
      code = BuildResultCode.Unchanged;
      emit(`[kiln] the packages are unchanged: the previous ones stay\n`);
    } else code = BuildResultCode.Succeeded;
  } catch (err) {
    if (r.discard) {
      await closeLog();
      await cleanup(rootDir, jobDir);
      return { type: "job.dropped", why: "aborted" };
    }
    if (err instanceof Rejected || err instanceof SandboxSetupError) {
      const reason = err instanceof Rejected ? err.reason : `sandbox set-up failed: ${err.message}`;
      const hostBad = err instanceof Rejected ? err.hostBad : false;
      log.warn({ reason, hostBad }, "job refused");
      await closeLog();
      await cleanup(rootDir, jobDir);
      await env.dispatcher
        .call("job.reject", { jobId: job.jobId, workerId: env.workerId, reason, hostBad }, { idempotent: true })
        .catch((e: unknown) => log.warn({ err: e }, "job refusal not delivered"));
      await rm(r.logFile, { force: true }).catch(() => undefined);
      return { type: "job.rejected", reason, hostBad };
    }
    code = BuildResultCode.Failed;
    if (!(err instanceof HookFailure)) {
      const why = r.abort.signal.aborted ? "killed: aborted" : (err as Error).message;
      log.warn({ err }, "build could not run");
      emit(`[kiln] build could not run: ${why}\n`);
    }
  }

  // ---- 5. results ---------------------------------------------------------------------------
  try {
    emit(`[kiln] finished: ${code}\n`);
    stats.times.totalMs = Date.now() - startTime;
    const statsFile = path.join(jobDir, "_statistics");
    await writeFile(statsFile, renderStatistics(stats));
    await closeLog();
    publishLogChunk(env.nc, job.jobId, { offset: r.logSize, data: new Uint8Array(0), eof: true });
    const wanted: { file: string; name: string }[] = [
      ...(code === BuildResultCode.Succeeded && outcome?.type === "build.succeeded"
        ? [...outcome.srpms, ...outcome.rpms].map((f) => ({ file: f, name: path.basename(f) }))
        : []),
      { file: r.logFile, name: "_log" },
      ...((await exists(path.join(jobDir, "_meta"))) ? [{ file: path.join(jobDir, "_meta"), name: "_meta" }] : []),
      { file: statsFile, name: "_statistics" },
    ];
    const files = await Promise.all(wanted.map((w) => upload(env, w.file, w.name)));
    await env.repo.call(
      "result.put",
      {
        project: job.project,
        repository: job.repository,
        arch: job.arch,
        package: job.package,
        jobId: job.jobId,
        workerId: env.workerId,
        code,
        files,
        startTime,
        endTime: Date.now(),
      },
      { timeoutMs: 120_000 }
    );
    // The next build of this package compares with these without downloading them.
    if (code === BuildResultCode.Succeeded) {
      for (const [i, w] of wanted.entries()) {
        if (w.name.endsWith(".rpm")) await env.cache.adopt(files[i]!.sha256, w.file, files[i]!.md5);
      }
    }
    // The dispatcher hands out the next job as soon as it hears this one is done.
    r.reporting = true;
    await env.dispatcher.call(
      "job.done",
      { jobId: job.jobId, workerId: env.workerId, result: code },
      { idempotent: true }
    );
    log.info({ code }, "job reported");
    return { type: "job.reported", code };
  } catch (err) {
    // The job stays with the dispatcher, which re-queues it if it is still wanted.
    log.warn({ err }, "job result not delivered");
    return { type: "job.dropped", why: `result not delivered: ${(err as Error).message}` };
  } finally {
    await closeLog();
    await cleanup(rootDir, jobDir);
  }
}

class HookFailure extends Error {}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false
  );
}

async function upload(env: BuildEnv, file: string, name: string): Promise<UploadedFile> {
  const size = (await stat(file)).size;
  const info = await uploadFile(
    env.repo,
    file,
    { size },
    {
      ...(env.onUploadProgress ? { onProgress: (d: number, t: number) => env.onUploadProgress!(name, d, t) } : {}),
    }
  );
  return { name, sha256: info.sha256, md5: info.md5, size: info.size };
}

/** The previous build's packages into `dir`, for post-build hooks (build-compare). */
async function fetchPrevious(
  env: BuildEnv,
  job: BuildJob,
  dir: string,
  fetch: (c: RoleClient<BlobApi>, sha: string, dest: string) => Promise<void>
): Promise<void> {
  try {
    const prev = await env.repoSigned.call(
      "result.get",
      { project: job.project, repository: job.repository, arch: job.arch, package: job.package },
      { idempotent: true }
    );
    if (!prev) return;
    await Promise.all(
      prev.binaries
        .filter((b) => !b.imported && !b.filename.includes("/") && b.filename.endsWith(".rpm"))
        .map(async (b) => {
          const p = path.join(dir, b.filename);
          await fetch(env.repo, b.sha256, p);
          await chmod(p, 0o644).catch(() => undefined);
        })
    );
  } catch (err) {
    env.log.warn({ err, jobId: job.jobId }, "previous packages not available to post-build hooks");
  }
}

async function previousExists(dir: string): Promise<boolean> {
  return (await readdir(dir).catch(() => [])).length > 0;
}

async function cleanup(rootDir: string, jobDir: string): Promise<void> {
  await cleanBuildRoot(rootDir).catch(() => undefined);
  await rm(jobDir, { recursive: true, force: true }).catch(() => undefined);
}
