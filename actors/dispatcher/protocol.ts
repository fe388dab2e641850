/**
 * The dispatcher's requests and messages.
 *
 * Requests arrive over NATS on `kiln.rpc.dispatcher.<noun>.<verb>` ({@link DispatcherApi}); the
 * Dispatcher actor also receives internal messages ({@link DispatcherInternal}) that report the
 * outcome of its own asynchronous work (a worker accepting a job, a heartbeat sweep).
 */
import type { RequestMsg } from "../common/actor-kit.ts";
import type { BuildJob, BuildResultCode, JobCode } from "../common/model.ts";

/** What a worker tells the dispatcher about itself (OBS worker XML). */
export interface WorkerRegistration {
  workerId: string;
  hostArch: string;
  buildArchs: string[];
  hostLabels: string[];
  sandbox: string;
  linux: { version: string; flavor?: string };
  cpuFlags: string[];
  processors: number;
  /** Build slots. */
  jobs: number;
  memoryMb: number;
  swapMb: number;
  diskMb: number;
}

export const WorkerState = { Idle: "idle", Building: "building", Down: "down" } as const;
export type WorkerState = (typeof WorkerState)[keyof typeof WorkerState];

/** A worker as `kiln workers` shows it. */
export interface WorkerView {
  workerId: string;
  state: WorkerState;
  hostArch: string;
  buildArchs: string[];
  jobs: number;
  running: { jobId: string; project: string; repository: string; arch: string; package: string; since: number }[];
  lastSeen: number;
  registeredAt: number;
  registration: WorkerRegistration;
}

/** A job as the dispatcher tracks it. */
export interface JobView {
  jobId: string;
  name: string;
  project: string;
  repository: string;
  arch: string;
  package: string;
  srcmd5: string;
  code: JobCode;
  reason: string;
  readyTime: number;
  workerId?: string;
  startTime?: number;
  /** Why a scheduled job waits ("waiting for 2 compliant workers (1 of them down)"). */
  details?: string;
  /** Set when the job ended and the worker reported the result. */
  result?: BuildResultCode;
}

export type DispatcherApi = {
  "worker.register": { req: WorkerRegistration; res: { heartbeatMs: number } };
  "worker.heartbeat": {
    req: { workerId: string; running: string[] };
    /** `unknown`: the dispatcher has no registration (it restarted); register again. */
    res: { known: boolean; abort: string[] };
  };
  "worker.leave": { req: { workerId: string }; res: null };
  "worker.list": { req: Record<string, never>; res: WorkerView[] };
  /** From a scheduler: persist, then acknowledge. Supersedes older jobs of the same package. */
  "job.submit": { req: { job: BuildJob }; res: { accepted: boolean } };
  /** From a worker: the job ended and its result is stored in the repo role. */
  "job.done": { req: { jobId: string; workerId: string; result: BuildResultCode }; res: null };
  "job.get": { req: { jobId: string }; res: (JobView & { job: BuildJob }) | null };
  "job.list": { req: { project?: string; arch?: string }; res: JobView[] };
  /** Abort/remove jobs of a project (optionally one package / repository / arch). */
  "job.abort": {
    req: { project: string; package?: string; repository?: string; arch?: string; onlyIfNot?: string };
    res: { aborted: number };
  };
};

export type DispatcherRequest = RequestMsg<DispatcherApi>;

export type DispatcherInternal =
  | { type: "assign.accepted"; jobId: string; workerId: string }
  | { type: "assign.refused"; jobId: string; workerId: string; reason: string; workerGone: boolean }
  | { type: "workers.sweep" }
  | { type: "queue.kick" };

export type DispatcherMsg = DispatcherRequest | DispatcherInternal;
