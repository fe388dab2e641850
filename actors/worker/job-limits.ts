/**
 * The sandbox limits of one job: the worker's limits, adjusted by what the project and the
 * package ask for where that is safe.
 *
 * - `BuildFlags: logidlelimit:<seconds>` (OBS's flag) sets the idle-log limit, at most the
 *   worker's wall-time limit; `BuildFlags: buildtimeout:<seconds>` lowers the wall-time limit (it
 *   never raises it: the worker admin decides how long a slot may be held).
 * - Build constraints that selected this worker for its memory or disk (`hardware:memory`,
 *   `memoryperjob`, `physicalmemory`, `disk`) raise the memory and disk limits to what they ask,
 *   but never past what the worker announced.
 * Log size and process limits are the worker's alone.
 */
import type { SandboxLimits } from "../../sandbox/index.ts";
import type { BuildJob } from "../common/model.ts";
import { constraintsForJob, sizeToMb, type Constraints } from "../dispatcher/constraints.ts";

const MiB = 1024 * 1024;

function flagSeconds(flags: readonly string[] | undefined, name: string): number | undefined {
  let v: number | undefined;
  for (const f of flags ?? []) {
    const i = f.indexOf(":");
    if (i < 0 || f.slice(0, i).toLowerCase() !== name) continue;
    const n = Number(f.slice(i + 1));
    if (Number.isFinite(n) && n > 0) v = n;
  }
  return v;
}

function constraintsOf(job: BuildJob): Constraints | undefined {
  try {
    return constraintsForJob(job.constraints, { arch: job.arch, package: job.package });
  } catch {
    // The dispatcher fails jobs with malformed constraints; nothing to raise here.
    return undefined;
  }
}

export function jobLimits(
  base: SandboxLimits,
  job: BuildJob,
  worker: { memoryMb: number; diskMb: number }
): SandboxLimits {
  const l = { ...base };
  const idle = flagSeconds(job.buildFlags, "logidlelimit");
  if (idle !== undefined) l.idleLogMs = Math.min(Math.round(idle * 1000), base.wallMs);
  const wall = flagSeconds(job.buildFlags, "buildtimeout");
  if (wall !== undefined) l.wallMs = Math.max(1000, Math.min(Math.round(wall * 1000), base.wallMs));
  const hw = constraintsOf(job)?.hardware;
  if (hw) {
    const memMb = Math.max(
      hw.memory ? sizeToMb(hw.memory) : 0,
      hw.memoryperjob ? sizeToMb(hw.memoryperjob) : 0,
      hw.physicalmemory ? sizeToMb(hw.physicalmemory) : 0
    );
    if (memMb * MiB > l.memoryBytes) l.memoryBytes = Math.round(Math.min(memMb, worker.memoryMb) * MiB);
    const diskMb = hw.disk ? sizeToMb(hw.disk) : 0;
    if (diskMb * MiB > l.diskBytes) l.diskBytes = Math.round(Math.min(diskMb, worker.diskMb) * MiB);
  }
  l.memoryBytes = Math.max(l.memoryBytes, base.memoryBytes);
  l.diskBytes = Math.max(l.diskBytes, base.diskBytes);
  return l;
}
