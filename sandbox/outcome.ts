/**
 * One-line causes for how a sandboxed run ended, worded for build logs and the web UI.
 */
import type { SandboxLimits } from "./limits.ts";
import { formatSeconds } from "./limits.ts";
import type { SandboxResult } from "./run.ts";

/** Why a run did not succeed: a clear one-line reason plus the raw exit code or signal. */
export interface FailureDescription {
  reason: string;
  exitCode?: number;
  signal?: string;
}

/**
 * Describes a run that did not exit 0. `what` names the command in the reason
 * ("rpmbuild exited with 1"). An exit 0 is described as a success.
 */
export function describeResult(result: SandboxResult, limits: SandboxLimits, what: string): FailureDescription {
  switch (result.type) {
    case "sandbox.exited": {
      if (result.code === 0) return { reason: `${what} succeeded`, exitCode: 0 };
      const base = `${what} exited with ${result.code}`;
      return {
        reason: result.stats.diskFull ? `disk limit of ${limits.diskBytes} bytes reached (${base})` : base,
        exitCode: result.code,
      };
    }
    case "sandbox.unpackFailed":
      return { reason: `unpacking the dependency packages failed (exit ${result.code})`, exitCode: result.code };
    case "sandbox.timedOut":
      return result.limit === "wall"
        ? { reason: `killed: wall time ${formatSeconds(limits.wallMs)} exceeded`, signal: result.signal }
        : { reason: `killed: no output for ${formatSeconds(limits.idleLogMs)}`, signal: result.signal };
    case "sandbox.killed":
      switch (result.reason) {
        case "aborted":
          return { reason: "killed: aborted", signal: result.signal };
        case "logLimit":
          return { reason: `killed: log exceeded ${limits.logBytes} bytes`, signal: result.signal };
        case "memory":
          return { reason: `killed: memory limit (${limits.memoryBytes} bytes)`, signal: result.signal };
        case "pids":
          return { reason: `killed: process limit (${limits.pids})`, signal: result.signal };
        case "disk":
          return { reason: `killed: disk limit (${limits.diskBytes} bytes)`, signal: result.signal };
        default:
          return assertNever(result.reason);
      }
    default:
      return assertNever(result);
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected sandbox result ${JSON.stringify(x)}`);
}
