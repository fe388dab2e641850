/**
 * The service role's requests (`kiln.rpc.service.<noun>.<verb>`) and the messages of its
 * ServiceRunner actor.
 *
 * The role has no state of its own worth keeping: the source role records which runs are wanted
 * and what they made. The ServiceRunner keeps the queue of runs and which are under way; runs
 * execute outside its mailbox and report back with `run.ended`.
 */
import type { RequestMsg } from "../common/actor-kit.ts";

/** A run the service role knows of. */
export interface RunView {
  project: string;
  package: string;
  runId: number;
  /** When it was queued or started. */
  since: number;
}

export type ServiceApi = {
  /** What the service role is doing: runs under way and runs waiting for a slot. */
  "runs.list": { req: Record<string, never>; res: { running: RunView[]; queued: RunView[] } };
};

export type ServiceRequest = RequestMsg<ServiceApi>;

/** A run is wanted (an event, or the pending list at start); a newer run of a package supersedes. */
export interface RunWantedMsg {
  type: "run.wanted";
  project: string;
  package: string;
  runId: number;
}

/** A run ended (delivered, dropped as stale, or aborted); its slot is free. */
export interface RunEndedMsg {
  type: "run.ended";
  project: string;
  package: string;
  runId: number;
  /** Infrastructure failed (source role unreachable, sandbox set-up): try again after this long. */
  retryInMs?: number;
}

export type ServiceRunnerMsg = ServiceRequest | RunWantedMsg | RunEndedMsg;
