/**
 * A worker's requests (`kiln.rpc.worker.<workerId>.<noun>.<verb>`) and the Worker actor's
 * internal messages.
 */
import type { RequestMsg } from "../common/actor-kit.ts";
import type { BuildJob, BuildResultCode } from "../common/model.ts";

export type WorkerApi = {
  /** From the dispatcher: take this job. Refused when no slot is free or the job is already here. */
  "job.assign": { req: { job: BuildJob }; res: { accepted: boolean; reason?: string } };
  /** Kill a running job's whole process tree. */
  "job.abort": { req: { jobId: string; reason?: string }; res: { aborted: boolean } };
  /** Part of a running (or just finished) job's log, from byte `offset`. */
  "log.read": {
    req: { jobId: string; offset: number; length: number };
    res: { data: Uint8Array; size: number; done: boolean } | null;
  };
  "worker.info": { req: Record<string, never>; res: { workerId: string; running: string[]; slots: number } };
};

export type WorkerRequest = RequestMsg<WorkerApi>;

export type WorkerInternal =
  { type: "build.ended"; jobId: string; result: BuildResultCode } | { type: "dispatcher.heartbeat" };

export type WorkerMsg = WorkerRequest | WorkerInternal;
