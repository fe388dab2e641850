/**
 * A worker's requests (`kiln.rpc.worker.<workerId>.<noun>.<verb>`) and the Worker actor's
 * internal messages.
 */
import type { RequestMsg } from "../common/actor-kit.ts";
import type { BuildJob } from "../common/model.ts";
import type { JobEnd } from "./build.ts";

export type WorkerApi = {
  /** From the dispatcher: take this job. Refused when no slot is free or the worker is marked bad. */
  "job.assign": { req: { job: BuildJob }; res: { accepted: boolean; reason?: string } };
  /**
   * Kill a running job's whole process tree. With `discard` (superseded, no longer assigned
   * here) nothing is reported; otherwise (a user's abort) the job is reported failed with its log.
   */
  "job.abort": { req: { jobId: string; reason?: string; discard?: boolean }; res: { aborted: boolean } };
  /** Part of a running (or just finished) job's log, from byte `offset`. */
  "log.read": {
    req: { jobId: string; offset: number; length: number };
    res: { data: Uint8Array; size: number; done: boolean } | null;
  };
  "worker.info": {
    req: Record<string, never>;
    res: { workerId: string; running: string[]; slots: number; disabled?: string };
  };
};

export type WorkerRequest = RequestMsg<WorkerApi>;

export type WorkerInternal = { type: "build.ended"; jobId: string; end: JobEnd };

export type WorkerMsg = WorkerRequest | WorkerInternal;
