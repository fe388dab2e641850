/**
 * The dispatcher role: the persistent job queue, the worker registry, and assignment.
 *
 * Jobs are written to LMDB before `job.submit` is acknowledged, so a queued job survives a
 * restart. Assignment is a two-step claim: the job becomes `dispatching` (persisted), the worker
 * is asked to take it, and only its acceptance makes the job `building`. Workers heartbeat; a
 * worker that misses {@link DispatcherOptions.downAfterMs} is marked down and its jobs go back to
 * the queue. The worker reports `job.done` after the repo role stored its result, which frees the
 * slot; a result uploaded half-way never reaches that point, so the job is simply re-run.
 *
 * Order: queued jobs live in a {@link FairQueue} (OBS's load-based fairness, obs-backend.md §6.3);
 * for every worker with a free slot the best job it may take is picked — it builds the job's arch,
 * meets the job's constraints (§6.2) and has not refused the package before (badhost).
 *
 * Jobs no worker can take: a job with constraints (or refusals) that waits is checked against
 * every known worker, idle, building or down. Some comply: its details say
 * "waiting for N compliant workers (M of them down)". None do: the job fails with "package build
 * was not possible: no compliant workers (constraints mismatch hint: …)", reported to the repo
 * role as a failed result with that log, as OBS does (see job-failure.ts). Workers get
 * {@link DispatcherOptions.startupGraceMs} to register after a start before any job fails so.
 */
import { dispatch, spawn, type Ref } from "nact";
import {
  ConflictError,
  InvalidInputError,
  NotFoundError,
  Role,
  RoleClient,
  RpcClient,
  bridgeActor,
  subjects,
  type BridgedRequest,
} from "../../transport/index.ts";
import { RoleStore, keys } from "../../storage/index.ts";
import { answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { JobCode, type BuildJob, type BuildResultCode } from "../common/model.ts";
import { acquireLease, answerPings, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import { arr, bool, int, obj, optArr, optInt, optStr, str, type Raw } from "../common/validate.ts";
import type { RepoApi } from "../repo/protocol.ts";
import { AccessNeed } from "../source/access.ts";
import { AccessGate, type CallerRequest } from "../source/access-gate.ts";
import type { WorkerApi } from "../worker/protocol.ts";
import {
  constraintsForJob,
  explainNoWorker,
  isUnconstrained,
  workerSatisfies,
  type Constraints,
} from "./constraints.ts";
import { FairQueue, type DispatchPrio, type LoadRecord, type QueuedJob } from "./fairness.ts";
import { reportFailure } from "./job-failure.ts";
import { JOB_PAGE } from "./job-pages.ts";
import { validateJob } from "./job-validate.ts";
import {
  DISPATCHER_WORKER_ID,
  WorkerState,
  type DispatcherApi,
  type DispatcherMsg,
  type JobView,
  type WorkerRegistration,
  type WorkerView,
} from "./protocol.ts";
import { cando } from "./worker-info.ts";

export interface DispatcherOptions {
  /** How often workers heartbeat. @default 2000 */
  heartbeatMs?: number;
  /** A worker silent for this long is down and its jobs are re-queued. @default 3 × heartbeatMs */
  downAfterMs?: number;
  /** After a start, jobs fail for want of compliant workers only this much later. @default 2 × downAfterMs */
  startupGraceMs?: number;
  /** How often waiting jobs with constraints are checked against all workers. @default 1000 */
  constraintCheckMs?: number;
  /** A worker that refused a package does not get it again for this long (OBS badhost). @default 24 h */
  badhostMs?: number;
  /** Down workers are forgotten after this long. @default 24 h */
  forgetWorkerMs?: number;
  /** How long a worker may take to answer `job.assign`. @default 5000 */
  assignTimeoutMs?: number;
  /** Dispatch priorities (OBS `_dispatchprios`). */
  prios?: readonly DispatchPrio[];
}

interface JobRecord {
  job: BuildJob;
  code: JobCode;
  workerId?: string;
  startTime?: number;
  details?: string;
  /** After a restart: the worker must check in before this time or the job is re-queued. */
  graceUntil?: number;
  /** Workers that refused the job. */
  rejections?: number;
  /** A user aborted the job while a worker had it: that worker reports it failed. */
  aborting?: string;
  /** The dispatcher ends the job as failed with this reason (job-failure.ts). */
  failure?: string;
}

interface WorkerEntry {
  reg: WorkerRegistration;
  /** The archs it builds: its declared ones, or what its host arch can build. */
  archs: string[];
  lastSeen: number;
  registeredAt: number;
  running: Set<string>;
  down: boolean;
  downWhy?: string;
  lastAssigned: number;
  /** It refused a job: offer it nothing until then (a worker refusing everything must not spin). */
  pausedUntil?: number;
  client: RoleClient<WorkerApi>;
}

interface StoredWorker {
  reg: WorkerRegistration;
  registeredAt: number;
  lastSeen: number;
}

const DAY_MS = 24 * 3600 * 1000;

const pkgKey = (j: { project: string; repository: string; arch: string; package: string }): string =>
  `${j.project}\u0000${j.repository}\u0000${j.arch}\u0000${j.package}`;

const strings = (o: Raw, field: string, max: number): string[] =>
  arr(
    o,
    field,
    (v) => {
      if (typeof v !== "string" || v.length > 1024) throw new InvalidInputError(`'${field}' entries must be strings`);
      return v;
    },
    { max }
  );

const validators: Validators<DispatcherApi> = {
  "worker.register": (raw) => validateRegistration(obj(raw)),
  "worker.heartbeat": (raw) => {
    const o = obj(raw);
    const r: DispatcherApi["worker.heartbeat"]["req"] = {
      workerId: str(o, "workerId"),
      running: strings(o, "running", 1024),
    };
    const disabled = optStr(o, "disabled", { max: 4096 });
    if (disabled !== undefined) r.disabled = disabled;
    return r;
  },
  "worker.leave": (raw) => ({ workerId: str(obj(raw), "workerId") }),
  "worker.list": () => ({}),
  "job.submit": (raw) => ({ job: validateJob(obj(raw).job) }),
  "job.done": (raw) => {
    const o = obj(raw);
    const result = str(o, "result") as BuildResultCode;
    return { jobId: str(o, "jobId"), workerId: str(o, "workerId"), result };
  },
  "job.reject": (raw) => {
    const o = obj(raw);
    return {
      jobId: str(o, "jobId"),
      workerId: str(o, "workerId"),
      reason: str(o, "reason", { max: 4096 }),
      hostBad: bool(o, "hostBad", false),
    };
  },
  "job.get": (raw) => ({ jobId: str(obj(raw), "jobId") }),
  "job.list": (raw) => {
    const o = obj(raw ?? {});
    const r: DispatcherApi["job.list"]["req"] = {};
    for (const k of ["project", "repository", "arch", "package"] as const) {
      const v = optStr(o, k);
      if (v !== undefined) r[k] = v;
    }
    const limit = optInt(o, "limit", { min: 1 });
    if (limit !== undefined) r.limit = limit;
    const after = optStr(o, "after", { allowEmpty: true });
    if (after !== undefined) r.after = after;
    return r;
  },
  "job.abort": (raw) => {
    const o = obj(raw);
    const r: DispatcherApi["job.abort"]["req"] = { project: str(o, "project") };
    for (const f of ["package", "repository", "arch", "onlyIfNot"] as const) {
      const v = optStr(o, f);
      if (v !== undefined) r[f] = v;
    }
    const packages = optArr(o, "packages", (v) => String(v), { max: 10_000 });
    if (packages !== undefined) r.packages = packages;
    return r;
  },
  "job.discard": (raw) => {
    const o = obj(raw);
    const r: DispatcherApi["job.discard"]["req"] = { project: str(o, "project") };
    for (const f of ["repository", "arch"] as const) {
      const v = optStr(o, f);
      if (v !== undefined) r[f] = v;
    }
    const packages = optArr(o, "packages", (v) => String(v), { max: 10_000 });
    if (packages !== undefined) r.packages = packages;
    if (bool(o, "onlyQueued", false)) r.onlyQueued = true;
    return r;
  },
};

function validateRegistration(o: Raw): WorkerRegistration {
  const linux = obj(o.linux ?? {}, "'linux'");
  const reg: WorkerRegistration = {
    workerId: str(o, "workerId", { max: 200 }),
    hostArch: str(o, "hostArch", { max: 50 }),
    buildArchs: strings(o, "buildArchs", 50),
    hostLabels: strings(o, "hostLabels", 200),
    sandbox: str(o, "sandbox", { max: 50 }),
    linux: { version: str(linux, "version", { max: 200 }) },
    cpuFlags: strings(o, "cpuFlags", 1000),
    processors: int(o, "processors", { min: 1 }),
    jobs: int(o, "jobs", { min: 1, max: 1024 }),
    memoryMb: int(o, "memoryMb", { min: 0 }),
    swapMb: int(o, "swapMb", { min: 0 }),
    diskMb: int(o, "diskMb", { min: 0 }),
  };
  if (reg.workerId === DISPATCHER_WORKER_ID) throw new InvalidInputError(`worker id ${reg.workerId} is reserved`);
  const flavor = optStr(linux, "flavor");
  if (flavor !== undefined) reg.linux.flavor = flavor;
  if (bool(o, "nativeOnly", false)) reg.nativeOnly = true;
  const hostname = optStr(o, "hostname", { max: 255 });
  if (hostname !== undefined) reg.hostname = hostname;
  const disabled = optStr(o, "disabled", { max: 4096 });
  if (disabled !== undefined) reg.disabled = disabled;
  return reg;
}

const archsOf = (reg: WorkerRegistration): string[] =>
  reg.buildArchs.length > 0 ? [...reg.buildArchs] : cando(reg.hostArch).map((e) => e.arch);

export async function startDispatcherRole(ctx: RoleContext, opts: DispatcherOptions = {}): Promise<RunningRole> {
  const log = ctx.log.child({ role: "dispatcher" });
  const lease = await acquireLease(ctx, "dispatcher");
  const store = RoleStore.open({ path: `${ctx.dataDir}/dispatcher/db`, log });
  const heartbeatMs = opts.heartbeatMs ?? 2000;
  const downAfterMs = opts.downAfterMs ?? heartbeatMs * 3;
  const startupGraceMs = opts.startupGraceMs ?? 2 * downAfterMs;
  const constraintCheckMs = opts.constraintCheckMs ?? 1000;
  const badhostMs = opts.badhostMs ?? DAY_MS;
  const forgetWorkerMs = opts.forgetWorkerMs ?? DAY_MS;
  const assignTimeoutMs = opts.assignTimeoutMs ?? 5000;
  const startedAt = Date.now();
  // Workers and the repo role take the dispatcher's requests on NATS permissions alone; signing
  // each one (ed25519 in JavaScript) would cost more than the assignment itself.
  const rpc = new RpcClient(ctx.nc);
  // Listings and job details say which projects build what: the source role decides who may see.
  const gate = new AccessGate(ctx.rpc);
  const repo = new RoleClient<RepoApi>(rpc, (t) => subjects.rpc(Role.Repo, t));
  /**
   * Throws unless the caller may access the project (or package), as the source role rules; an
   * admin still reaches the jobs of a package or project deleted meanwhile.
   */
  const allowed = async (msg: CallerRequest, project: string, need: AccessNeed, pkg?: string): Promise<void> => {
    await gate.filter(msg, [{ project, ...(pkg !== undefined ? { package: pkg } : {}) }], need, { strict: true });
  };

  const jobs = new Map<string, JobRecord>();
  const byPackage = new Map<string, string>();
  const workers = new Map<string, WorkerEntry>();
  /** Effective constraints of jobs that have any. */
  const constraintsOf = new Map<string, Constraints>();
  /** package key → worker → until when it must not get the package again. */
  const badhosts = new Map<string, Map<string, number>>();
  const loads: LoadRecord[] = [];
  for (const { key, value } of store.scan<{ at: number; value: number }>(keys.loadsAll())) {
    const [, project, repository, arch] = key as [string, string, string, string];
    loads.push({ project, repository, arch, at: value.at, value: value.value });
  }
  const queue = new FairQueue<QueuedJob>({ loads, ...(opts.prios ? { prios: opts.prios } : {}) });

  const clientOf = (workerId: string): RoleClient<WorkerApi> =>
    new RoleClient<WorkerApi>(rpc, (t) => subjects.worker(workerId, t));

  // ---- restore -------------------------------------------------------------------------------

  for (const { value } of store.scan<StoredWorker>(keys.workersAll())) {
    // Until a restored worker heartbeats, it counts as down: it may be gone.
    workers.set(value.reg.workerId, {
      reg: value.reg,
      archs: archsOf(value.reg),
      lastSeen: value.lastSeen,
      registeredAt: value.registeredAt,
      running: new Set(),
      down: true,
      downWhy: "not seen since the dispatcher started",
      lastAssigned: 0,
      client: clientOf(value.reg.workerId),
    });
  }
  const building = new Map<string, { project: string; repository: string; arch: string; n: number }>();
  const restoredFailures: JobRecord[] = [];
  for (const { value } of store.scan<JobRecord>(keys.jobsAll())) {
    const rec = value;
    jobs.set(rec.job.jobId, rec);
    byPackage.set(pkgKey(rec.job), rec.job.jobId);
    const c = parseConstraints(rec.job);
    if (c.ok && c.constraints) constraintsOf.set(rec.job.jobId, c.constraints);
    if (rec.failure) {
      restoredFailures.push(rec);
    } else if (rec.code === JobCode.Scheduled) {
      queue.add(queued(rec));
    } else {
      rec.graceUntil = Date.now() + downAfterMs;
      const k = `${rec.job.project}\u0000${rec.job.repository}\u0000${rec.job.arch}`;
      const b = building.get(k) ?? {
        project: rec.job.project,
        repository: rec.job.repository,
        arch: rec.job.arch,
        n: 0,
      };
      b.n++;
      building.set(k, b);
    }
  }
  for (const b of building.values()) queue.setBuilding(b, b.n);
  log.info({ jobs: jobs.size, queued: queue.size, workers: workers.size }, "job queue restored");

  // ---- helpers -------------------------------------------------------------------------------

  function parseConstraints(job: BuildJob): { ok: true; constraints?: Constraints } | { ok: false; error: string } {
    const c = job.constraints;
    if (c.prjconf.length === 0 && c.recipe.length === 0 && !c.file) return { ok: true };
    try {
      const parsed = constraintsForJob(c, { arch: job.arch, package: job.package });
      return isUnconstrained(parsed) ? { ok: true } : { ok: true, constraints: parsed };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  function queued(rec: JobRecord): QueuedJob {
    const j = rec.job;
    const q: QueuedJob = {
      jobId: j.jobId,
      project: j.project,
      repository: j.repository,
      arch: j.arch,
      package: j.package,
      needed: j.needed,
      reason: j.reason,
      readyTime: j.readyTime,
    };
    if (j.revTime !== undefined) q.revTime = j.revTime;
    const c = constraintsOf.get(j.jobId);
    if (c) q.constraints = c;
    return q;
  }

  /** Set once stop() began: late callbacks (assignment answers, failure reports) change nothing. */
  let closed = false;
  const persist = (rec: JobRecord): void => {
    if (!closed) void store.db.put(keys.job(rec.job.jobId), rec);
  };
  const persistWorker = (w: WorkerEntry): void => {
    const v: StoredWorker = { reg: w.reg, registeredAt: w.registeredAt, lastSeen: w.lastSeen };
    if (!closed) void store.db.put(keys.worker(w.reg.workerId), v);
  };
  const prpaOf = (j: BuildJob): { project: string; repository: string; arch: string } => ({
    project: j.project,
    repository: j.repository,
    arch: j.arch,
  });

  /** Takes a job off the worker it was assigned to (the slot is free again). */
  const unassign = (rec: JobRecord, span?: { start: number; end: number }): void => {
    if (!rec.workerId || rec.workerId === DISPATCHER_WORKER_ID) return;
    workers.get(rec.workerId)?.running.delete(rec.job.jobId);
    if (rec.code !== JobCode.Scheduled) queue.recordFinished(prpaOf(rec.job), span);
  };

  const forget = (jobId: string): void => {
    const rec = jobs.get(jobId);
    if (!rec) return;
    jobs.delete(jobId);
    if (byPackage.get(pkgKey(rec.job)) === jobId) byPackage.delete(pkgKey(rec.job));
    queue.remove(jobId);
    constraintsOf.delete(jobId);
    if (!closed) void store.db.remove(keys.job(jobId));
  };

  /** Drops a job without a result: a newer one replaces it, or its scheduler no longer wants it. */
  const supersede = (rec: JobRecord): void => {
    const jobId = rec.job.jobId;
    if (rec.workerId && rec.workerId !== DISPATCHER_WORKER_ID && rec.code !== JobCode.Scheduled) {
      abortOnWorker(rec.workerId, jobId, "superseded", true);
    }
    unassign(rec);
    forget(jobId);
  };

  /** Tells a worker to kill a job; failures are harmless (it may be gone). */
  /** Live jobs (not failing or being aborted) of a project, narrowed as `job.abort`/`job.discard` ask. */
  const matchingJobs = (a: {
    project: string;
    package?: string;
    packages?: string[];
    repository?: string;
    arch?: string;
  }): JobRecord[] => {
    const pkgs = new Set([...(a.packages ?? []), ...(a.package !== undefined ? [a.package] : [])]);
    return [...jobs.values()].filter(
      (rec) =>
        rec.job.project === a.project &&
        (pkgs.size === 0 || pkgs.has(rec.job.package)) &&
        (a.repository === undefined || rec.job.repository === a.repository) &&
        (a.arch === undefined || rec.job.arch === a.arch) &&
        !rec.failure &&
        !rec.aborting
    );
  };

  const abortOnWorker = (workerId: string, jobId: string, reason: string, discard: boolean): void => {
    const w = workers.get(workerId);
    if (!w) return;
    void w.client.call("job.abort", { jobId, reason, discard }, { timeoutMs: 5000 }).catch(() => undefined);
  };

  let kickPending = false;
  let self: Ref<DispatcherMsg> | undefined;
  /** One assignment round per event-loop turn, however many events asked for one. */
  const kick = (): void => {
    if (kickPending || !self) return;
    kickPending = true;
    const target = self;
    setImmediate(() => dispatch(target, { type: "queue.kick" }));
  };

  const startFailureReport = (rec: JobRecord): void => {
    const jobId = rec.job.jobId;
    const target = self!;
    void reportFailure(repo, rec.job, rec.failure!, rec.startTime ?? Date.now()).then(
      () => dispatch(target, { type: "failure.reported", jobId, ok: true }),
      (err: unknown) => {
        log.warn({ err, jobId }, "failure report to the repo role failed, will retry");
        dispatch(target, { type: "failure.reported", jobId, ok: false });
      }
    );
  };

  /** Ends a job as failed with `reason` (no worker builds it). */
  const failJob = (rec: JobRecord, reason: string): void => {
    if (rec.failure) return;
    queue.remove(rec.job.jobId);
    if (rec.workerId && rec.workerId !== DISPATCHER_WORKER_ID) {
      if (!rec.aborting) abortOnWorker(rec.workerId, rec.job.jobId, reason, true);
      unassign(rec);
    }
    rec.code = JobCode.Building;
    rec.workerId = DISPATCHER_WORKER_ID;
    rec.failure = reason;
    rec.startTime ??= Date.now();
    delete rec.graceUntil;
    delete rec.details;
    persist(rec);
    log.info({ jobId: rec.job.jobId, name: rec.job.name, reason }, "job failed by the dispatcher");
    startFailureReport(rec);
  };

  /** Back to the queue (its worker went away or refused it); an aborted one fails instead. */
  const requeue = (rec: JobRecord, why: string): void => {
    if (rec.failure) return;
    unassign(rec);
    if (rec.aborting) {
      delete rec.workerId;
      failJob(rec, `aborted (${rec.aborting}); ${why}`);
      return;
    }
    log.info({ jobId: rec.job.jobId, workerId: rec.workerId, why }, "job re-queued");
    rec.code = JobCode.Scheduled;
    delete rec.workerId;
    delete rec.startTime;
    delete rec.graceUntil;
    persist(rec);
    queue.add(queued(rec));
    kick();
  };

  const markDown = (w: WorkerEntry, why: string): void => {
    if (w.down) return;
    w.down = true;
    w.downWhy = why;
    log.warn({ workerId: w.reg.workerId, why }, "worker down");
    for (const jobId of [...w.running]) {
      const rec = jobs.get(jobId);
      if (rec) requeue(rec, `worker ${w.reg.workerId} down: ${why}`);
    }
    w.running.clear();
  };

  const isBadhost = (
    job: { project: string; repository: string; arch: string; package: string },
    workerId: string,
    now: number
  ): boolean => {
    const until = badhosts.get(pkgKey(job))?.get(workerId);
    return until !== undefined && until > now;
  };

  const usable = (w: WorkerEntry): boolean => !w.down && w.reg.disabled === undefined;

  const view = (rec: JobRecord): JobView => {
    const j = rec.job;
    const v: JobView = {
      jobId: j.jobId,
      name: j.name,
      project: j.project,
      repository: j.repository,
      arch: j.arch,
      package: j.package,
      srcmd5: j.srcmd5,
      code: rec.code,
      reason: j.reason,
      readyTime: j.readyTime,
    };
    if (rec.workerId) v.workerId = rec.workerId;
    if (rec.startTime) v.startTime = rec.startTime;
    if (rec.failure) v.details = rec.failure;
    else if (rec.aborting) v.details = `aborting (${rec.aborting})`;
    else if (rec.details) v.details = rec.details;
    if (rec.rejections) v.rejections = rec.rejections;
    return v;
  };

  const workerView = (w: WorkerEntry): WorkerView => {
    const state = w.down
      ? WorkerState.Down
      : w.running.size > 0
        ? WorkerState.Building
        : w.reg.disabled !== undefined
          ? WorkerState.Down
          : WorkerState.Idle;
    const v: WorkerView = {
      workerId: w.reg.workerId,
      state,
      hostArch: w.reg.hostArch,
      buildArchs: w.archs,
      jobs: w.reg.jobs,
      running: [...w.running].flatMap((id) => {
        const r = jobs.get(id);
        return r
          ? [
              {
                jobId: id,
                project: r.job.project,
                repository: r.job.repository,
                arch: r.job.arch,
                package: r.job.package,
                since: r.startTime ?? 0,
              },
            ]
          : [];
      }),
      lastSeen: w.lastSeen,
      registeredAt: w.registeredAt,
      registration: w.reg,
    };
    if (w.reg.disabled !== undefined) v.details = `marked bad: ${w.reg.disabled}`;
    else if (w.down && w.downWhy) v.details = w.downWhy;
    return v;
  };

  // ---- assignment ----------------------------------------------------------------------------

  const startAssign = (rec: JobRecord, w: WorkerEntry): void => {
    const jobId = rec.job.jobId;
    const workerId = w.reg.workerId;
    queue.recordAssignment(jobId);
    rec.code = JobCode.Dispatching;
    rec.workerId = workerId;
    delete rec.details;
    w.running.add(jobId);
    w.lastAssigned = Date.now();
    persist(rec);
    const target = self!;
    w.client.call("job.assign", { job: rec.job }, { timeoutMs: assignTimeoutMs }).then(
      (r) =>
        dispatch(
          target,
          r.accepted
            ? { type: "assign.accepted", jobId, workerId }
            : { type: "assign.refused", jobId, workerId, reason: r.reason ?? "refused", workerGone: false }
        ),
      (err: unknown) =>
        dispatch(target, {
          type: "assign.refused",
          jobId,
          workerId,
          reason: String((err as Error).message),
          workerGone: true,
        })
    );
  };

  /** Fills free worker slots with the best jobs each worker may take. */
  const assign = (): void => {
    if (queue.size === 0) return;
    const now = Date.now();
    const free = [...workers.values()].filter(
      (w) => usable(w) && w.running.size < w.reg.jobs && (w.pausedUntil === undefined || w.pausedUntil <= now)
    );
    if (free.length === 0) return;
    // Spread jobs: the emptiest workers first, the least recently used among equals (OBS sorts
    // by the fraction of idle slots on the host).
    free.sort(
      (a, b) =>
        b.running.size / b.reg.jobs - a.running.size / a.reg.jobs ||
        a.running.size - b.running.size ||
        a.lastAssigned - b.lastAssigned
    );
    for (const w of free) {
      while (w.running.size < w.reg.jobs && queue.size > 0) {
        const workerId = w.reg.workerId;
        const next = queue.next(
          (q) => !isBadhost(q, workerId, now) && workerSatisfies(w.reg, q.constraints, q.arch).ok,
          { archs: w.archs, maxScan: 5000 }
        );
        if (!next) break;
        const rec = jobs.get(next.jobId);
        if (!rec) {
          queue.remove(next.jobId);
          continue;
        }
        startAssign(rec, w);
      }
      if (queue.size === 0) break;
    }
  };

  // ---- jobs no worker takes ------------------------------------------------------------------

  let lastConstraintCheck = 0;
  /** Explains waiting constrained (or refused) jobs; fails those no known worker could ever build. */
  const checkWaiting = (now: number): void => {
    if (now - lastConstraintCheck < constraintCheckMs) return;
    lastConstraintCheck = now;
    const statuses = [...workers.values()].map((w) => ({
      caps: w.reg,
      state: (w.down || w.reg.disabled !== undefined ? "down" : w.running.size < w.reg.jobs ? "idle" : "building") as
        "idle" | "building" | "down",
      id: w.reg.workerId,
    }));
    const memo = new Map<string, ReturnType<typeof explainNoWorker>>();
    const mayFail = now - startedAt >= startupGraceMs;
    for (const rec of [...jobs.values()]) {
      if (rec.code !== JobCode.Scheduled || rec.failure) continue;
      const j = rec.job;
      const c = constraintsOf.get(j.jobId);
      const refused = badhosts.get(pkgKey(j));
      if (!c && !refused) {
        if (rec.details) delete rec.details;
        continue;
      }
      let ex: ReturnType<typeof explainNoWorker>;
      if (refused) {
        ex = explainNoWorker(
          statuses.map((s) => ({ caps: s.caps, state: s.state, badhost: isBadhost(j, s.id, now) })),
          c,
          j.arch
        );
      } else {
        const key = `${j.arch}\u0000${JSON.stringify(c)}`;
        ex = memo.get(key) ?? explainNoWorker(statuses, c, j.arch);
        memo.set(key, ex);
      }
      if (ex.type === "constraints.waiting") {
        rec.details = ex.detail;
        continue;
      }
      // Nobody known builds the arch at all (workers still starting, say): keep waiting quietly.
      const anyForArch = statuses.some((s) => archsOf(s.caps).includes(j.arch));
      if (mayFail && anyForArch) failJob(rec, `package build was not possible: ${ex.detail}`);
      else rec.details = anyForArch ? ex.detail : `no worker builds ${j.arch}`;
    }
  };

  let lastLoadSave = Date.now();
  const saveLoads = (): void => {
    if (closed) return;
    lastLoadSave = Date.now();
    for (const l of queue.snapshotLoads()) {
      void store.db.put(keys.load(l.project, l.repository, l.arch), { at: l.at, value: l.value });
    }
  };

  // ---- the actor -----------------------------------------------------------------------------

  const handle = async (msg: DispatcherMsg): Promise<void> => {
    if (closed && !("replyTo" in msg)) return;
    switch (msg.type) {
      case "worker.register":
        return answer(msg.replyTo, () => {
          const reg = msg.args;
          const prev = workers.get(reg.workerId);
          const now = Date.now();
          const entry: WorkerEntry = {
            reg,
            archs: archsOf(reg),
            lastSeen: now,
            registeredAt: prev && !prev.down ? prev.registeredAt : now,
            running: prev?.running ?? new Set(),
            down: false,
            lastAssigned: prev?.lastAssigned ?? 0,
            client: prev?.client ?? clientOf(reg.workerId),
          };
          workers.set(reg.workerId, entry);
          persistWorker(entry);
          log.info(
            { workerId: reg.workerId, archs: entry.archs, slots: reg.jobs, disabled: reg.disabled },
            "worker registered"
          );
          kick();
          return { heartbeatMs };
        });
      case "worker.heartbeat":
        return answer(msg.replyTo, () => {
          const w = workers.get(msg.args.workerId);
          if (!w) return { known: false, abort: [] };
          // A restored registration is only trusted once the worker registers again.
          if (w.down && w.downWhy === "not seen since the dispatcher started") return { known: false, abort: [] };
          const now = Date.now();
          w.lastSeen = now;
          if (msg.args.disabled !== w.reg.disabled) {
            if (msg.args.disabled === undefined) delete w.reg.disabled;
            else w.reg.disabled = msg.args.disabled;
            persistWorker(w);
          }
          if (w.down) {
            w.down = false;
            delete w.downWhy;
            log.info({ workerId: w.reg.workerId }, "worker back");
          }
          const abort: string[] = [];
          for (const jobId of msg.args.running) {
            const rec = jobs.get(jobId);
            if (!rec || rec.workerId !== w.reg.workerId) abort.push(jobId);
            else if (rec.graceUntil) {
              delete rec.graceUntil;
              w.running.add(jobId);
            }
          }
          // Jobs we think run there but the worker does not know any more were lost.
          for (const jobId of [...w.running]) {
            const rec = jobs.get(jobId);
            if (rec?.code === JobCode.Building && !msg.args.running.includes(jobId)) {
              requeue(rec, "the worker lost the job");
            }
          }
          if (w.running.size < w.reg.jobs) kick();
          return { known: true, abort };
        });
      case "worker.leave":
        return answer(msg.replyTo, () => {
          const w = workers.get(msg.args.workerId);
          if (w) {
            markDown(w, "left");
            log.info({ workerId: msg.args.workerId }, "worker left");
          }
          kick();
          return null;
        });
      case "worker.list":
        return answer(msg.replyTo, async () => {
          const views = [...workers.values()].map(workerView);
          const visible = await gate.visibleProjects(
            msg,
            views.flatMap((w) => w.running.map((r) => r.project)),
            AccessNeed.See
          );
          // A worker is shown to everybody; what it builds only to those who may see the project.
          return views.map((w) => ({ ...w, running: w.running.filter((r) => visible.has(r.project)) }));
        });
      case "job.submit": {
        // The reply waits for the commit, the mailbox does not: submissions arriving together
        // share one LMDB transaction.
        let committed: Promise<unknown> = Promise.resolve();
        const accepted = ((): DispatcherApi["job.submit"]["res"] => {
          const job = msg.args.job;
          if (jobs.has(job.jobId)) return { accepted: true };
          const older = byPackage.get(pkgKey(job));
          if (older) {
            const rec = jobs.get(older);
            if (rec) supersede(rec);
            else forget(older);
            log.info({ jobId: older, by: job.jobId }, "job superseded");
          }
          const rec: JobRecord = { job, code: JobCode.Scheduled };
          jobs.set(job.jobId, rec);
          byPackage.set(pkgKey(job), job.jobId);
          const c = parseConstraints(job);
          if (c.ok && c.constraints) constraintsOf.set(job.jobId, c.constraints);
          committed = store.db.put(keys.job(job.jobId), rec);
          if (!c.ok) {
            failJob(rec, `package build was not possible: bad build constraints: ${c.error}`);
          } else {
            queue.add(queued(rec));
            log.debug({ jobId: job.jobId, name: job.name, reason: job.reason }, "job queued");
            kick();
          }
          return older ? { accepted: true, superseded: older } : { accepted: true };
        })();
        void answer(msg.replyTo, () => committed.then(() => accepted));
        return;
      }
      case "job.done":
        return answer(msg.replyTo, () => {
          const rec = jobs.get(msg.args.jobId);
          if (!rec) throw new NotFoundError(`no job ${msg.args.jobId}`);
          if (rec.workerId !== msg.args.workerId) {
            throw new ConflictError(`job ${msg.args.jobId} is not assigned to ${msg.args.workerId}`);
          }
          const now = Date.now();
          log.info({ jobId: rec.job.jobId, result: msg.args.result, workerId: rec.workerId }, "job done");
          unassign(rec, rec.startTime ? { start: rec.startTime, end: now } : undefined);
          forget(msg.args.jobId);
          kick();
          return null;
        });
      case "job.reject":
        return answer(msg.replyTo, () => {
          const a = msg.args;
          const rec = jobs.get(a.jobId);
          if (!rec) throw new NotFoundError(`no job ${a.jobId}`);
          if (rec.workerId !== a.workerId) throw new ConflictError(`job ${a.jobId} is not assigned to ${a.workerId}`);
          const w = workers.get(a.workerId);
          const now = Date.now();
          const k = pkgKey(rec.job);
          let m = badhosts.get(k);
          if (!m) badhosts.set(k, (m = new Map()));
          m.set(a.workerId, now + badhostMs);
          rec.rejections = (rec.rejections ?? 0) + 1;
          if (a.hostBad && w) {
            w.reg.disabled = a.reason;
            persistWorker(w);
          }
          log.warn({ jobId: a.jobId, workerId: a.workerId, reason: a.reason, hostBad: a.hostBad }, "job refused");
          // OBS gives up after 5 + 20/hosts attempts, so a job all hosts refuse does not loop.
          const hosts = [...workers.values()].filter((x) => x.archs.includes(rec.job.arch)).length;
          if (rec.aborting) requeue(rec, a.reason);
          else if (rec.rejections > 5 + 20 / Math.max(1, hosts)) {
            unassign(rec);
            delete rec.workerId;
            failJob(rec, `refused by ${rec.rejections} workers, last: ${a.reason}`);
          } else requeue(rec, `refused by ${a.workerId}: ${a.reason}`);
          return null;
        });
      case "job.get":
        return answer(msg.replyTo, async () => {
          const rec = jobs.get(msg.args.jobId);
          if (!rec) return null;
          // The job lists the sources: whoever asks must be allowed to read them.
          await allowed(msg, rec.job.project, AccessNeed.Sources, rec.job.package);
          return { ...view(rec), job: rec.job };
        });
      case "job.list":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          if (a.project !== undefined) await allowed(msg, a.project, AccessNeed.See);
          let list = [...jobs.values()].filter(
            (r) =>
              (a.project === undefined || r.job.project === a.project) &&
              (a.repository === undefined || r.job.repository === a.repository) &&
              (a.arch === undefined || r.job.arch === a.arch) &&
              (a.package === undefined || r.job.package === a.package)
          );
          if (a.project === undefined) {
            const visible = await gate.visibleProjects(
              msg,
              list.map((r) => r.job.project),
              AccessNeed.See
            );
            list = list.filter((r) => visible.has(r.job.project));
          }
          if (a.after !== undefined) {
            const after = a.after;
            return list
              .filter((r) => r.job.jobId > after)
              .sort((x, y) => (x.job.jobId < y.job.jobId ? -1 : 1))
              .slice(0, a.limit ?? JOB_PAGE)
              .map(view);
          }
          if (a.limit === undefined || list.length <= a.limit) return list.map(view);
          const rank = (r: JobRecord): number => (r.code === JobCode.Scheduled ? 1 : 0);
          return list
            .sort((x, y) => rank(x) - rank(y))
            .slice(0, a.limit)
            .map(view);
        });
      case "job.abort":
        return answer(msg.replyTo, async () => {
          const a = msg.args;
          await allowed(msg, a.project, AccessNeed.Write);
          const jobIds: string[] = [];
          for (const rec of matchingJobs(a)) {
            if (a.onlyIfNot !== undefined && rec.job.jobId === a.onlyIfNot) continue;
            jobIds.push(rec.job.jobId);
            if (rec.code === JobCode.Scheduled || !rec.workerId) {
              failJob(rec, "aborted before the build started");
              continue;
            }
            rec.aborting = "aborted by a user";
            persist(rec);
            if (rec.code === JobCode.Building) abortOnWorker(rec.workerId, rec.job.jobId, rec.aborting, false);
          }
          if (jobIds.length) log.info({ ...a, aborted: jobIds.length }, "jobs aborted");
          return { aborted: jobIds.length, jobIds };
        });
      case "job.discard":
        return answer(msg.replyTo, () => {
          const a = msg.args;
          const jobIds: string[] = [];
          for (const rec of matchingJobs(a)) {
            if (a.onlyQueued && (rec.code !== JobCode.Scheduled || rec.workerId !== undefined)) continue;
            jobIds.push(rec.job.jobId);
            supersede(rec);
          }
          if (jobIds.length) {
            log.info({ ...a, discarded: jobIds.length }, "jobs discarded");
            kick();
          }
          return { discarded: jobIds.length, jobIds };
        });
      case "assign.accepted": {
        const rec = jobs.get(msg.jobId);
        if (!rec || rec.workerId !== msg.workerId) {
          // Superseded or failed while the worker was being asked: tell it to stop.
          abortOnWorker(msg.workerId, msg.jobId, "superseded", true);
          return;
        }
        rec.code = JobCode.Building;
        rec.startTime = Date.now();
        persist(rec);
        if (rec.aborting) abortOnWorker(msg.workerId, msg.jobId, rec.aborting, false);
        log.debug({ jobId: msg.jobId, workerId: msg.workerId }, "job building");
        return;
      }
      case "assign.refused": {
        const rec = jobs.get(msg.jobId);
        const w = workers.get(msg.workerId);
        if (rec && rec.workerId === msg.workerId) requeue(rec, msg.reason);
        else w?.running.delete(msg.jobId);
        if (w && !msg.workerGone) w.pausedUntil = Date.now() + Math.min(1000, heartbeatMs);
        if (w && msg.workerGone) markDown(w, `unreachable: ${msg.reason}`);
        kick();
        return;
      }
      case "failure.reported": {
        const rec = jobs.get(msg.jobId);
        if (!rec?.failure) return;
        if (msg.ok) {
          forget(msg.jobId);
          return;
        }
        const target = self!;
        setTimeout(() => {
          const again = jobs.get(msg.jobId);
          if (again?.failure) startFailureReport(again);
        }, 5000).unref();
        void target;
        return;
      }
      case "workers.sweep": {
        const now = Date.now();
        for (const w of [...workers.values()]) {
          if (!w.down && now - w.lastSeen > downAfterMs) {
            markDown(w, `silent for ${Math.round((now - w.lastSeen) / 1000)} s`);
          }
          if (w.down && now - w.lastSeen > forgetWorkerMs) {
            workers.delete(w.reg.workerId);
            void store.db.remove(keys.worker(w.reg.workerId));
          }
        }
        for (const rec of jobs.values()) {
          if (rec.graceUntil && rec.graceUntil < now) requeue(rec, "its worker did not check in after a restart");
        }
        for (const [k, m] of badhosts) {
          for (const [id, until] of m) if (until <= now) m.delete(id);
          if (m.size === 0) badhosts.delete(k);
        }
        checkWaiting(now);
        if (now - lastLoadSave > 30_000) saveLoads();
        assign();
        return;
      }
      case "queue.kick":
        kickPending = false;
        assign();
        return;
      default:
        assertNever(msg);
    }
  };

  const actor = spawn(
    ctx.system,
    async (_state: undefined, msg: DispatcherMsg | BridgedRequest, actx) => {
      self ??= actx.self as Ref<DispatcherMsg>;
      if ("replyTo" in msg && "subject" in msg) {
        const req = validated(validators, msg as BridgedRequest);
        if (req) await handle(req);
      } else {
        await handle(msg as DispatcherMsg);
      }
      return undefined;
    },
    "dispatcher",
    { onCrash: (_m, err, c) => (log.error({ err }, "dispatcher actor crashed"), c.resume) }
  );
  self = actor as unknown as Ref<DispatcherMsg>;
  for (const rec of restoredFailures) startFailureReport(rec);

  const sub = bridgeActor(ctx.nc, actor as unknown as Ref<BridgedRequest>, {
    subject: subjects.rpcAll(Role.Dispatcher),
    queue: Role.Dispatcher,
    prefixTokens: 3,
    log,
  });
  const sweep = setInterval(() => dispatch(actor, { type: "workers.sweep" }), Math.max(100, heartbeatMs / 2));
  const stopPing = answerPings(ctx.nc, () =>
    pingInfo("dispatcher", ctx.nodeId, startedAt, { jobs: jobs.size, queued: queue.size, workers: workers.size })
  );
  kick();
  log.info({ heartbeatMs, downAfterMs }, "dispatcher started");

  return {
    role: "dispatcher",
    async stop(): Promise<void> {
      clearInterval(sweep);
      stopPing();
      await sub.drain();
      saveLoads();
      closed = true;
      await store.db.flushed;
      await store.close();
      await lease.release();
      log.info({}, "dispatcher stopped");
    },
  };
}
