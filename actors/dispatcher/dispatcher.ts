/**
 * The dispatcher role: the persistent job queue, the worker registry, and assignment.
 *
 * Jobs are written to LMDB before `job.submit` is acknowledged, so a queued job survives a
 * restart. Assignment is a two-step claim: the job becomes `dispatching` (persisted), the worker
 * is asked to take it, and only its acceptance makes the job `building`. Workers heartbeat; a
 * worker that misses {@link DispatcherOptions.downAfterMs} is marked down and its jobs go back to
 * the queue. The worker reports `job.done` after the repo role stored its result, which frees the
 * slot; a result uploaded half-way never reaches that point, so the job is simply re-run.
 */
import { dispatch, spawn, type Ref } from "nact";
import {
  ConflictError,
  NotFoundError,
  Role,
  RoleClient,
  bridgeActor,
  subjects,
  type BridgedRequest,
} from "../../transport/index.ts";
import { RoleStore, keys } from "../../storage/index.ts";
import { answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { JobCode, type BuildJob, type BuildResultCode } from "../common/model.ts";
import { acquireLease, answerPings, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import { arr, int, obj, optStr, str, type Raw } from "../common/validate.ts";
import type { WorkerApi } from "../worker/protocol.ts";
import {
  WorkerState,
  type DispatcherApi,
  type DispatcherMsg,
  type JobView,
  type WorkerRegistration,
  type WorkerView,
} from "./protocol.ts";
import { validateJob } from "./job-validate.ts";

export interface DispatcherOptions {
  /** How often workers heartbeat. @default 2000 */
  heartbeatMs?: number;
  /** A worker silent for this long is down and its jobs are re-queued. @default 3 × heartbeatMs */
  downAfterMs?: number;
}

interface JobRecord {
  job: BuildJob;
  code: JobCode;
  workerId?: string;
  startTime?: number;
  details?: string;
  /** After a restart: the worker must check in before this time or the job is re-queued. */
  graceUntil?: number;
}

interface WorkerEntry {
  reg: WorkerRegistration;
  lastSeen: number;
  registeredAt: number;
  running: Set<string>;
  down: boolean;
  client: RoleClient<WorkerApi>;
}

const pkgKey = (j: { project: string; repository: string; arch: string; package: string }): string =>
  `${j.project}\u0000${j.repository}\u0000${j.arch}\u0000${j.package}`;

const validators: Validators<DispatcherApi> = {
  "worker.register": (raw) => validateRegistration(obj(raw)),
  "worker.heartbeat": (raw) => {
    const o = obj(raw);
    return { workerId: str(o, "workerId"), running: arr(o, "running", (v) => String(v)) };
  },
  "worker.leave": (raw) => ({ workerId: str(obj(raw), "workerId") }),
  "worker.list": () => ({}),
  "job.submit": (raw) => ({ job: validateJob(obj(raw).job) }),
  "job.done": (raw) => {
    const o = obj(raw);
    const result = str(o, "result") as BuildResultCode;
    return { jobId: str(o, "jobId"), workerId: str(o, "workerId"), result };
  },
  "job.get": (raw) => ({ jobId: str(obj(raw), "jobId") }),
  "job.list": (raw) => {
    const o = obj(raw ?? {});
    const r: { project?: string; arch?: string } = {};
    const p = optStr(o, "project");
    const a = optStr(o, "arch");
    if (p !== undefined) r.project = p;
    if (a !== undefined) r.arch = a;
    return r;
  },
  "job.abort": (raw) => {
    const o = obj(raw);
    const r: DispatcherApi["job.abort"]["req"] = { project: str(o, "project") };
    for (const f of ["package", "repository", "arch", "onlyIfNot"] as const) {
      const v = optStr(o, f);
      if (v !== undefined) r[f] = v;
    }
    return r;
  },
};

function validateRegistration(o: Raw): WorkerRegistration {
  const linux = obj(o.linux ?? {}, "'linux'");
  const reg: WorkerRegistration = {
    workerId: str(o, "workerId", { max: 200 }),
    hostArch: str(o, "hostArch", { max: 50 }),
    buildArchs: arr(o, "buildArchs", (v) => String(v), { max: 50 }),
    hostLabels: arr(o, "hostLabels", (v) => String(v), { max: 200 }),
    sandbox: str(o, "sandbox", { max: 50 }),
    linux: { version: str(linux, "version", { max: 200 }) },
    cpuFlags: arr(o, "cpuFlags", (v) => String(v), { max: 1000 }),
    processors: int(o, "processors", { min: 1 }),
    jobs: int(o, "jobs", { min: 1, max: 1024 }),
    memoryMb: int(o, "memoryMb", { min: 0 }),
    swapMb: int(o, "swapMb", { min: 0 }),
    diskMb: int(o, "diskMb", { min: 0 }),
  };
  const flavor = optStr(linux, "flavor");
  if (flavor !== undefined) reg.linux.flavor = flavor;
  return reg;
}

export async function startDispatcherRole(ctx: RoleContext, opts: DispatcherOptions = {}): Promise<RunningRole> {
  const log = ctx.log.child({ role: "dispatcher" });
  const lease = await acquireLease(ctx, "dispatcher");
  const store = RoleStore.open({ path: `${ctx.dataDir}/dispatcher/db`, log });
  const heartbeatMs = opts.heartbeatMs ?? 2000;
  const downAfterMs = opts.downAfterMs ?? heartbeatMs * 3;
  const startedAt = Date.now();

  const jobs = new Map<string, JobRecord>();
  const byPackage = new Map<string, string>();
  const workers = new Map<string, WorkerEntry>();
  for (const { value } of store.scan<JobRecord>(keys.jobsAll())) {
    if (value.code === JobCode.Dispatching || value.code === JobCode.Building) {
      value.graceUntil = Date.now() + downAfterMs;
    }
    jobs.set(value.job.jobId, value);
    byPackage.set(pkgKey(value.job), value.job.jobId);
  }
  log.info({ jobs: jobs.size }, "job queue restored");

  const persist = (rec: JobRecord): Promise<boolean> => store.db.put(keys.job(rec.job.jobId), rec);
  const forget = (jobId: string): void => {
    const rec = jobs.get(jobId);
    if (!rec) return;
    jobs.delete(jobId);
    if (byPackage.get(pkgKey(rec.job)) === jobId) byPackage.delete(pkgKey(rec.job));
    if (rec.workerId) workers.get(rec.workerId)?.running.delete(jobId);
    void store.db.remove(keys.job(jobId));
  };
  const requeue = (rec: JobRecord, why: string): void => {
    log.info({ jobId: rec.job.jobId, workerId: rec.workerId, why }, "job re-queued");
    if (rec.workerId) workers.get(rec.workerId)?.running.delete(rec.job.jobId);
    rec.code = JobCode.Scheduled;
    delete rec.workerId;
    delete rec.startTime;
    delete rec.graceUntil;
    void persist(rec);
  };
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
    if (rec.details) v.details = rec.details;
    return v;
  };
  const workerView = (w: WorkerEntry): WorkerView => ({
    workerId: w.reg.workerId,
    state: w.down ? WorkerState.Down : w.running.size > 0 ? WorkerState.Building : WorkerState.Idle,
    hostArch: w.reg.hostArch,
    buildArchs: w.reg.buildArchs,
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
  });

  /** Tells a worker to kill a job it no longer owns; failures are harmless (it may be gone). */
  const abortOnWorker = (workerId: string, jobId: string, reason: string): void => {
    const w = workers.get(workerId);
    if (!w) return;
    void w.client.call("job.abort", { jobId, reason }, { timeoutMs: 5000 }).catch(() => undefined);
  };

  /** Picks jobs for free worker slots: oldest ready first among jobs the worker can build. */
  const assign = (self: Ref<DispatcherMsg>): void => {
    const waiting = [...jobs.values()]
      .filter((r) => r.code === JobCode.Scheduled)
      .sort((a, b) => a.job.readyTime - b.job.readyTime);
    if (waiting.length === 0) return;
    for (const w of workers.values()) {
      if (w.down) continue;
      let free = w.reg.jobs - w.running.size;
      for (let i = 0; free > 0 && i < waiting.length; i++) {
        const rec = waiting[i]!;
        if (rec.code !== JobCode.Scheduled || !w.reg.buildArchs.includes(rec.job.arch)) continue;
        rec.code = JobCode.Dispatching;
        rec.workerId = w.reg.workerId;
        w.running.add(rec.job.jobId);
        free--;
        void persist(rec);
        const jobId = rec.job.jobId;
        const workerId = w.reg.workerId;
        w.client.call("job.assign", { job: rec.job }, { timeoutMs: 5000 }).then(
          (r) =>
            dispatch(
              self,
              r.accepted
                ? { type: "assign.accepted", jobId, workerId }
                : { type: "assign.refused", jobId, workerId, reason: r.reason ?? "refused", workerGone: false }
            ),
          (err: unknown) =>
            dispatch(self, {
              type: "assign.refused",
              jobId,
              workerId,
              reason: String((err as Error).message),
              workerGone: true,
            })
        );
      }
    }
  };

  const handle = async (msg: DispatcherMsg, self: Ref<DispatcherMsg>): Promise<void> => {
    switch (msg.type) {
      case "worker.register":
        return answer(msg.replyTo, () => {
          const reg = msg.args;
          const prev = workers.get(reg.workerId);
          const entry: WorkerEntry = {
            reg,
            lastSeen: Date.now(),
            registeredAt: prev?.registeredAt ?? Date.now(),
            running: prev?.running ?? new Set(),
            down: false,
            client: new RoleClient<WorkerApi>(ctx.rpc, (t) => subjects.worker(reg.workerId, t)),
          };
          workers.set(reg.workerId, entry);
          log.info({ workerId: reg.workerId, archs: reg.buildArchs, slots: reg.jobs }, "worker registered");
          dispatch(self, { type: "queue.kick" });
          return { heartbeatMs };
        });
      case "worker.heartbeat":
        return answer(msg.replyTo, () => {
          const w = workers.get(msg.args.workerId);
          if (!w) return { known: false, abort: [] };
          w.lastSeen = Date.now();
          if (w.down) {
            w.down = false;
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
            if (rec?.code === JobCode.Building && !msg.args.running.includes(jobId))
              requeue(rec, "worker lost the job");
          }
          if (w.running.size < w.reg.jobs) dispatch(self, { type: "queue.kick" });
          return { known: true, abort };
        });
      case "worker.leave":
        return answer(msg.replyTo, () => {
          const w = workers.get(msg.args.workerId);
          if (w) {
            for (const jobId of [...w.running]) {
              const rec = jobs.get(jobId);
              if (rec) requeue(rec, "worker left");
            }
            workers.delete(msg.args.workerId);
            log.info({ workerId: msg.args.workerId }, "worker left");
          }
          dispatch(self, { type: "queue.kick" });
          return null;
        });
      case "worker.list":
        return answer(msg.replyTo, () => [...workers.values()].map(workerView));
      case "job.submit":
        return answer(msg.replyTo, async () => {
          const job = msg.args.job;
          if (jobs.has(job.jobId)) return { accepted: true };
          const older = byPackage.get(pkgKey(job));
          if (older) {
            const rec = jobs.get(older);
            if (rec?.workerId && rec.code !== JobCode.Scheduled) abortOnWorker(rec.workerId, older, "superseded");
            forget(older);
            log.info({ jobId: older, by: job.jobId }, "job superseded");
          }
          const rec: JobRecord = { job, code: JobCode.Scheduled };
          jobs.set(job.jobId, rec);
          byPackage.set(pkgKey(job), job.jobId);
          await persist(rec);
          log.info({ jobId: job.jobId, name: job.name, reason: job.reason }, "job queued");
          dispatch(self, { type: "queue.kick" });
          return { accepted: true };
        });
      case "job.done":
        return answer(msg.replyTo, () => {
          const rec = jobs.get(msg.args.jobId);
          if (!rec) throw new NotFoundError(`no job ${msg.args.jobId}`);
          if (rec.workerId !== msg.args.workerId) {
            throw new ConflictError(`job ${msg.args.jobId} is not assigned to ${msg.args.workerId}`);
          }
          log.info({ jobId: rec.job.jobId, result: msg.args.result, workerId: rec.workerId }, "job done");
          forget(msg.args.jobId);
          dispatch(self, { type: "queue.kick" });
          return null;
        });
      case "job.get":
        return answer(msg.replyTo, () => {
          const rec = jobs.get(msg.args.jobId);
          return rec ? { ...view(rec), job: rec.job } : null;
        });
      case "job.list":
        return answer(msg.replyTo, () =>
          [...jobs.values()]
            .filter(
              (r) =>
                (!msg.args.project || r.job.project === msg.args.project) &&
                (!msg.args.arch || r.job.arch === msg.args.arch)
            )
            .map(view)
        );
      case "job.abort":
        return answer(msg.replyTo, () => {
          const a = msg.args;
          let aborted = 0;
          for (const rec of [...jobs.values()]) {
            const j = rec.job;
            if (j.project !== a.project) continue;
            if (a.package !== undefined && j.package !== a.package) continue;
            if (a.repository !== undefined && j.repository !== a.repository) continue;
            if (a.arch !== undefined && j.arch !== a.arch) continue;
            if (a.onlyIfNot !== undefined && j.jobId === a.onlyIfNot) continue;
            if (rec.workerId && rec.code !== JobCode.Scheduled) abortOnWorker(rec.workerId, j.jobId, "aborted");
            forget(j.jobId);
            aborted++;
          }
          if (aborted) log.info({ ...a, aborted }, "jobs aborted");
          return { aborted };
        });
      case "assign.accepted": {
        const rec = jobs.get(msg.jobId);
        if (!rec || rec.workerId !== msg.workerId) {
          // Superseded or aborted while the worker was being asked: tell it to stop.
          abortOnWorker(msg.workerId, msg.jobId, "superseded");
          return;
        }
        rec.code = JobCode.Building;
        rec.startTime = Date.now();
        void persist(rec);
        log.info({ jobId: msg.jobId, workerId: msg.workerId }, "job building");
        return;
      }
      case "assign.refused": {
        const rec = jobs.get(msg.jobId);
        if (rec && rec.workerId === msg.workerId) requeue(rec, msg.reason);
        const w = workers.get(msg.workerId);
        if (w && msg.workerGone) {
          w.down = true;
          log.warn({ workerId: msg.workerId, reason: msg.reason }, "worker unreachable, marked down");
        }
        dispatch(self, { type: "queue.kick" });
        return;
      }
      case "workers.sweep": {
        const now = Date.now();
        for (const w of workers.values()) {
          if (!w.down && now - w.lastSeen > downAfterMs) {
            w.down = true;
            log.warn({ workerId: w.reg.workerId, silentMs: now - w.lastSeen }, "worker down");
            for (const jobId of [...w.running]) {
              const rec = jobs.get(jobId);
              if (rec) requeue(rec, "worker down");
            }
          }
        }
        for (const rec of jobs.values()) {
          if (rec.graceUntil && rec.graceUntil < now) requeue(rec, "worker did not check in after restart");
        }
        assign(self);
        return;
      }
      case "queue.kick":
        assign(self);
        return;
      default:
        assertNever(msg);
    }
  };

  const actor = spawn(
    ctx.system,
    async (_state: undefined, msg: DispatcherMsg | BridgedRequest, actx) => {
      const self = actx.self as Ref<DispatcherMsg>;
      if ("replyTo" in msg && "subject" in msg) {
        const req = validated(validators, msg as BridgedRequest);
        if (req) await handle(req, self);
      } else {
        await handle(msg as DispatcherMsg, self);
      }
      return undefined;
    },
    "dispatcher",
    { onCrash: (_m, err, c) => (log.error({ err }, "dispatcher actor crashed"), c.resume) }
  );

  const sub = bridgeActor(ctx.nc, actor as unknown as Ref<BridgedRequest>, {
    subject: subjects.rpcAll(Role.Dispatcher),
    queue: Role.Dispatcher,
    prefixTokens: 3,
    log,
  });
  const sweep = setInterval(() => dispatch(actor, { type: "workers.sweep" }), Math.max(250, heartbeatMs / 2));
  const stopPing = answerPings(ctx.nc, () =>
    pingInfo("dispatcher", ctx.nodeId, startedAt, { jobs: jobs.size, workers: workers.size })
  );
  dispatch(actor, { type: "queue.kick" });
  log.info({ heartbeatMs, downAfterMs }, "dispatcher started");

  return {
    role: "dispatcher",
    async stop(): Promise<void> {
      clearInterval(sweep);
      stopPing();
      await sub.drain();
      await store.db.flushed;
      await store.close();
      await lease.release();
      log.info({}, "dispatcher stopped");
    },
  };
}
