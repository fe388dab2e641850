/**
 * A worker: one build host's slots. It checks its sandbox, registers its capabilities with the
 * dispatcher and heartbeats; it accepts jobs up to its slot count and runs each (build.ts) while
 * it keeps answering heartbeats, aborts and log reads.
 *
 * The Worker actor owns the slot bookkeeping; builds run outside its mailbox and report back
 * with `build.ended`. Heartbeats run on their own timer, outside the mailbox too, so a slow
 * dispatcher never delays an assignment.
 */
import { mkdir, open as openFile, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { dispatch, spawn, type Ref } from "nact";
import {
  Role,
  RoleClient,
  RpcClient,
  bridgeActor,
  subjects,
  type BlobApi,
  type BridgedRequest,
} from "../../transport/index.ts";
import {
  DEFAULT_LIMITS,
  SandboxUnavailableError,
  sandboxSelfTest,
  WrapperPool,
  validateLimits,
  type SandboxLimits,
} from "../../sandbox/index.ts";
import { answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { answerPings, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import { bool, int, obj, optStr, str } from "../common/validate.ts";
import { validateJob } from "../dispatcher/job-validate.ts";
import type { DispatcherApi, WorkerRegistration } from "../dispatcher/protocol.ts";
import { cando } from "../dispatcher/worker-info.ts";
import type { RepoApi } from "../repo/protocol.ts";
import { AccessNeed } from "../source/access.ts";
import { AccessGate } from "../source/access-gate.ts";
import { archBuild } from "./build-arch.ts";
import { runJob, type BuildEnv, type RunningJob } from "./build.ts";
import { ContentCache } from "./cache.ts";
import { checkHooks, defaultHooks, type HookConfig } from "./hooks.ts";
import type { WorkerApi, WorkerMsg, WorkerRequest } from "./protocol.ts";

export interface WorkerOptions {
  /** @default `<hostname>:<n>` */
  workerId: string;
  /** Archs this worker builds. @default what the host arch can build */
  archs?: string[];
  /** Build slots. @default 1 */
  jobs?: number;
  hostLabels?: string[];
  /** Memory to announce for constraints, in MiB. @default the host's */
  memoryMb?: number;
  /** Disk to announce for constraints, in MiB. @default 65536 */
  diskMb?: number;
  /** Cache of sources and binaries. @default `<dataDir>/worker/<id>/cache` */
  cacheDir?: string;
  /** @default 2048 */
  cacheSizeMb?: number;
  /** Limits of every build (projects may adjust some: job-limits.ts). @default DEFAULT_LIMITS */
  limits?: Partial<SandboxLimits>;
  /** Host paths a build must never see besides the defaults (kiln's data dir and the cache). */
  hiddenPaths?: string[];
  /** Hooks this worker offers. @default {@link defaultHooks} */
  hooks?: HookConfig[];
  /** Programs of build-time source services. @default kiln's own (ops/services) */
  servicesDir?: string;
  /** Check the sandbox before taking jobs (and refuse to start when it fails). @default true */
  selfTest?: boolean;
  /** Test seam: upload progress of each result file. */
  onUploadProgress?: (name: string, done: number, total: number) => void;
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

/**
 * Archs a host can build natively or with a personality helper (OBS BSCando), leaving out those
 * whose helper kiln cannot apply (it would refuse their jobs).
 */
export function buildableArchs(host: string): string[] {
  return cando(host)
    .filter((e) => archBuild(host, e.arch).type !== "arch.unsupported")
    .map((e) => e.arch);
}

const validators: Validators<WorkerApi> = {
  "job.assign": (raw) => ({ job: validateJob(obj(raw).job) }),
  "job.abort": (raw) => {
    const o = obj(raw);
    const r: WorkerApi["job.abort"]["req"] = { jobId: str(o, "jobId") };
    const reason = optStr(o, "reason");
    if (reason !== undefined) r.reason = reason;
    if (bool(o, "discard", false)) r.discard = true;
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
  const limits = validateLimits({ ...DEFAULT_LIMITS, ...opts.limits });
  const hooks = opts.hooks ?? defaultHooks();
  await checkHooks(hooks);
  if (opts.selfTest !== false) {
    const st = await sandboxSelfTest(log, { scratchDir: await ensureDir(base) });
    if (!st.ok) throw new SandboxUnavailableError(`worker ${workerId} cannot sandbox builds: ${st.reason}`);
  }
  await rm(jobsDir, { recursive: true, force: true });
  await mkdir(jobsDir, { recursive: true, mode: 0o700 });
  const cacheDir = opts.cacheDir ?? path.join(base, "cache");
  const cache = new ContentCache(cacheDir, (opts.cacheSizeMb ?? 2048) * 1024 * 1024, log);
  const slots = opts.jobs ?? 1;
  const host = hostArch();
  const registration: WorkerRegistration = {
    workerId,
    hostArch: host,
    buildArchs: opts.archs ?? buildableArchs(host),
    hostLabels: opts.hostLabels ?? [],
    sandbox: "bwrap",
    linux: { version: os.release() },
    cpuFlags: await hostCpuFlags(),
    processors: os.cpus().length,
    jobs: slots,
    memoryMb: opts.memoryMb ?? Math.floor(os.totalmem() / 1024 / 1024),
    swapMb: 0,
    diskMb: opts.diskMb ?? 65536,
    hostname: os.hostname(),
  };
  // The worker's own traffic (blobs, results, heartbeats) is authorised by its NATS credentials;
  // signing every chunk request would cost milliseconds each. Reads the source role's access
  // rules may restrict (a previous result of a hidden project) go signed, as the roles' reads do.
  const rpc = new RpcClient(ctx.nc);
  const gate = new AccessGate(ctx.rpc);
  const dispatcher = new RoleClient<DispatcherApi>(rpc, (t) => subjects.rpc(Role.Dispatcher, t));
  const wrappers = new WrapperPool({ log, size: slots });
  const env: BuildEnv = {
    workerId,
    nc: ctx.nc,
    log,
    cache,
    source: new RoleClient<BlobApi>(rpc, (t) => subjects.rpc(Role.Source, t)),
    repo: new RoleClient<RepoApi>(rpc, (t) => subjects.rpc(Role.Repo, t)),
    repoSigned: new RoleClient<RepoApi>(ctx.rpc, (t) => subjects.rpc(Role.Repo, t)),
    dispatcher,
    jobsDir,
    limits,
    hiddenPaths: [ctx.dataDir, cacheDir, ...(opts.hiddenPaths ?? [])],
    hooks,
    ...(opts.servicesDir ? { servicesDir: opts.servicesDir } : {}),
    hardware: { memoryMb: registration.memoryMb, diskMb: registration.diskMb },
    hostArch: host,
    wrappers,
    ...(opts.onUploadProgress ? { onUploadProgress: opts.onUploadProgress } : {}),
  };
  const running = new Map<string, RunningJob>();
  const builds = new Set<Promise<unknown>>();
  const startedAt = Date.now();
  let heartbeatMs = 2000;
  let stopping = false;
  /** Why this host takes no jobs (a hook or a failed sandbox self-test said so). */
  let disabled: string | undefined;

  const heartbeat = async (): Promise<void> => {
    if (stopping) return;
    try {
      const res = await dispatcher.call(
        "worker.heartbeat",
        { workerId, running: [...running.keys()], ...(disabled !== undefined ? { disabled } : {}) },
        { timeoutMs: 3000 }
      );
      if (!res.known) {
        const reg = { ...registration, ...(disabled !== undefined ? { disabled } : {}) };
        heartbeatMs = (await dispatcher.call("worker.register", reg, { timeoutMs: 3000 })).heartbeatMs;
      }
      for (const jobId of res.abort) {
        const r = running.get(jobId);
        if (r) {
          r.discard = true;
          r.abort.abort(new Error("job no longer assigned here"));
        }
      }
    } catch (err) {
      log.debug({ err }, "heartbeat failed");
    }
  };

  const handle = async (msg: WorkerMsg, self: Ref<WorkerMsg>): Promise<void> => {
    switch (msg.type) {
      case "job.assign":
        return answer(msg.replyTo, () => {
          const job = msg.args.job;
          if (running.has(job.jobId)) return { accepted: true };
          if (stopping) return { accepted: false, reason: "worker is stopping" };
          if (disabled !== undefined) return { accepted: false, reason: `worker is marked bad: ${disabled}` };
          const busy = [...running.values()].filter((x) => !x.reporting).length;
          if (busy >= slots) return { accepted: false, reason: "no free slot" };
          if (!registration.buildArchs.includes(job.arch))
            return { accepted: false, reason: `cannot build ${job.arch}` };
          const r: RunningJob = {
            job,
            abort: new AbortController(),
            discard: false,
            logFile: path.join(jobsDir, `${job.jobId}.log`),
            logSize: 0,
            done: false,
          };
          running.set(job.jobId, r);
          log.info({ jobId: job.jobId, name: job.name }, "job accepted");
          const p = runJob(env, r).then((end) => dispatch(self, { type: "build.ended", jobId: job.jobId, end }));
          builds.add(p);
          void p.finally(() => builds.delete(p));
          return { accepted: true };
        });
      case "job.abort":
        return answer(msg.replyTo, () => {
          const r = running.get(msg.args.jobId);
          if (!r) return { aborted: false };
          log.info(
            { jobId: msg.args.jobId, reason: msg.args.reason, discard: msg.args.discard },
            "job abort requested"
          );
          if (msg.args.discard) r.discard = true;
          r.abort.abort(new Error(msg.args.reason ?? "aborted"));
          return { aborted: true };
        });
      case "log.read":
        return answer(msg.replyTo, async () => {
          const r = running.get(msg.args.jobId);
          if (!r) return null;
          // A build log shows what a project builds and how: only for those who may see it.
          await gate.require(msg, { project: r.job.project, package: r.job.package }, AccessNeed.See);
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
        return answer(msg.replyTo, () => ({
          workerId,
          running: [...running.keys()],
          slots,
          ...(disabled !== undefined ? { disabled } : {}),
        }));
      case "build.ended": {
        const r = running.get(msg.jobId);
        if (r) {
          r.done = true;
          running.delete(msg.jobId);
          await rm(r.logFile, { force: true }).catch(() => undefined);
        }
        const end = msg.end;
        if (end.type === "job.rejected") {
          if (end.hostBad) disabled = end.reason;
          else if (end.reason.startsWith("sandbox set-up failed") && disabled === undefined) {
            // One broken set-up may be the job's; a failing self-test means the host.
            const st = await sandboxSelfTest(log, { scratchDir: await ensureDir(base) });
            if (!st.ok) disabled = `sandbox self-test failed: ${st.reason}`;
          }
          if (disabled !== undefined) log.error({ disabled }, "worker marked bad, taking no more jobs");
        }
        void heartbeat();
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
      void heartbeat().finally(() => {
        if (!stopping) schedule();
      });
    }, heartbeatMs);
  };
  // Register in the background: the dispatcher may start after us.
  void heartbeat();
  schedule();
  const stopPing = answerPings(ctx.nc, () =>
    pingInfo("worker", ctx.nodeId, startedAt, {
      workerId,
      state: disabled !== undefined ? "bad" : running.size ? "building" : "idle",
      jobs: [...running.values()].map((r) => r.job.name),
      slots,
    })
  );
  log.info({ archs: registration.buildArchs, slots, hooks: hooks.map((h) => h.name) }, "worker started");
  return {
    role: `worker:${workerId}`,
    async stop(): Promise<void> {
      stopping = true;
      if (beat) clearTimeout(beat);
      stopPing();
      for (const r of running.values()) {
        r.discard = true;
        r.abort.abort(new Error("worker stopping"));
      }
      await sub.drain();
      await dispatcher.call("worker.leave", { workerId }, { timeoutMs: 2000 }).catch(() => undefined);
      // Builds end within the sandbox's kill grace period; do not leave their trees behind.
      await Promise.race([Promise.allSettled([...builds]), new Promise((r) => setTimeout(r, 15_000).unref())]);
      await wrappers.close();
      log.info({}, "worker stopped");
    },
  };
}

async function ensureDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  return dir;
}

// x86-64 micro-architecture levels, which OBS adds to the cpu flags as pseudo-flags.
const X86_LEVELS: [string, string[]][] = [
  ["x86-64-v2", ["cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"]],
  ["x86-64-v3", ["avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"]],
  ["x86-64-v4", ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]],
];

/** The cpu flags of a /proc/cpuinfo text (its first cpu), with the x86-64 levels they reach. */
export function cpuFlags(cpuinfo: string): string[] {
  const line = cpuinfo.split("\n").find((l) => /^flags\s*:/.test(l));
  const flags = line
    ? line
        .slice(line.indexOf(":") + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean)
    : [];
  const have = new Set(flags);
  for (const [level, needs] of X86_LEVELS) {
    if (!needs.every((f) => have.has(f))) break;
    flags.push(level);
  }
  return flags;
}

async function hostCpuFlags(): Promise<string[]> {
  return cpuFlags(await readFile("/proc/cpuinfo", "utf8").catch(() => ""));
}
