/**
 * The dispatcher's requests and messages.
 *
 * Requests arrive over NATS on `kiln.rpc.dispatcher.<noun>.<verb>` ({@link DispatcherApi}); the
 * Dispatcher actor also receives internal messages ({@link DispatcherInternal}) that report the
 * outcome of its own asynchronous work (a worker accepting a job, a heartbeat sweep, a failure
 * reported to the repo role).
 */
import type { RequestMsg } from "../common/actor-kit.ts";
import type { BuildJob, BuildResultCode, JobCode } from "../common/model.ts";
import type { WorkerCapabilities } from "./worker-info.ts";

/** What a worker tells the dispatcher about itself (OBS worker XML, sizes in MiB). */
export interface WorkerRegistration extends WorkerCapabilities {
  /** Kernel and host facts beyond what constraints match on, for `kiln workers`. */
  hostname?: string;
  /** Set when the worker marked itself bad (a hook said so, or its sandbox broke): it takes no jobs. */
  disabled?: string;
}

export const WorkerState = { Idle: "idle", Building: "building", Down: "down" } as const;
export type WorkerState = (typeof WorkerState)[keyof typeof WorkerState];

/** Who reports a job the dispatcher itself ended (no compliant workers, aborted before it started). */
export const DISPATCHER_WORKER_ID = "kiln-dispatcher";

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
  /** Why the worker is down or takes no jobs ("marked bad: …", "left", "silent for 12 s"). */
  details?: string;
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
  /** Workers that refused the job so far (OBS badhost). */
  rejections?: number;
}

export type DispatcherApi = {
  /** From a worker: (re)register; also clears a `disabled` mark the worker no longer reports. */
  "worker.register": { req: WorkerRegistration; res: { heartbeatMs: number } };
  "worker.heartbeat": {
    req: { workerId: string; running: string[]; disabled?: string };
    /** `known: false`: the dispatcher has no registration (it restarted); register again. */
    res: { known: boolean; abort: string[] };
  };
  /** From a worker that shuts down: its jobs go back to the queue and it shows as down. */
  "worker.leave": { req: { workerId: string }; res: null };
  "worker.list": { req: Record<string, never>; res: WorkerView[] };
  /** From a scheduler: persist, then acknowledge. Supersedes older jobs of the same package. */
  /** A job of the package not yet finished is superseded by it (named in the answer). */
  "job.submit": { req: { job: BuildJob }; res: { accepted: boolean; superseded?: string } };
  /** From a worker: the job ended and its result is stored in the repo role. */
  "job.done": { req: { jobId: string; workerId: string; result: BuildResultCode }; res: null };
  /**
   * From a worker that accepted a job but will not build it (a pre-build hook said so, or its
   * sandbox could not be set up): the job goes to another worker, never back to this one for a
   * day (OBS badhost). With `hostBad`, the worker takes no more jobs at all.
   */
  "job.reject": { req: { jobId: string; workerId: string; reason: string; hostBad: boolean }; res: null };
  "job.get": { req: { jobId: string }; res: (JobView & { job: BuildJob }) | null };
  /**
   * Jobs, optionally of one project, repository, arch or package; with `limit`, at most that many
   * (running ones first). A reply must fit NATS's max_payload (about 3,000 jobs at the default
   * 1 MB), so whoever needs all of them reads pages: with `after` (a jobId, "" for the first page)
   * the next `limit` (default 1,000) jobs in jobId order — see `listAllJobs` (job-pages.ts).
   */
  "job.list": {
    req: { project?: string; repository?: string; arch?: string; package?: string; limit?: number; after?: string };
    res: JobView[];
  };
  /**
   * `kiln abort`: ends matching jobs as failed. A building job is killed on its worker, which
   * reports the failure with its log; a queued one is failed by the dispatcher. Needs the right
   * to change the project.
   */
  "job.abort": {
    req: {
      project: string;
      package?: string;
      packages?: string[];
      repository?: string;
      arch?: string;
      onlyIfNot?: string;
    };
    res: { aborted: number; jobIds: string[] };
  };
  /**
   * From a scheduler: its supersession (OBS `killjob`/`killscheduled`). The jobs are dropped
   * without a result, a running one killed on its worker without an upload; with `onlyQueued`,
   * only jobs no worker has yet. Trusted as `job.submit` is: NATS authorization gives it to
   * kiln's roles alone, so it needs no write access to the project, which a scheduler does not
   * have and a deleted project no longer grants. Users end jobs with `job.abort`.
   */
  "job.discard": {
    req: {
      project: string;
      packages?: string[];
      repository?: string;
      arch?: string;
      onlyQueued?: boolean;
    };
    res: { discarded: number; jobIds: string[] };
  };
};

export type DispatcherRequest = RequestMsg<DispatcherApi>;

export type DispatcherInternal =
  | { type: "assign.accepted"; jobId: string; workerId: string }
  | { type: "assign.refused"; jobId: string; workerId: string; reason: string; workerGone: boolean }
  | { type: "failure.reported"; jobId: string; ok: boolean }
  | { type: "workers.sweep" }
  | { type: "queue.kick" };

export type DispatcherMsg = DispatcherRequest | DispatcherInternal;
