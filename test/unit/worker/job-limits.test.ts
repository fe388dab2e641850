import assert from "node:assert/strict";
import type { BuildJob } from "../../../actors/index.ts";
import { jobLimits } from "../../../actors/worker/job-limits.ts";
import { DEFAULT_LIMITS } from "../../../sandbox/index.ts";
import { simJob } from "../../helpers/worker-sim.ts";

const MiB = 1024 * 1024;
const worker = { memoryMb: 16_384, diskMb: 32_768 };
const job = (over: Partial<BuildJob>): BuildJob => simJob("p", "k", over);

describe("worker/job-limits", () => {
  it("should use the worker's limits for a job that asks for nothing", () => {
    assert.deepEqual(jobLimits(DEFAULT_LIMITS, job({}), worker), DEFAULT_LIMITS);
  });

  it("should take the project's idle-log limit up to the wall time, and only lower the wall time", () => {
    const base = { ...DEFAULT_LIMITS, wallMs: 3600_000 };
    assert.equal(jobLimits(base, job({ buildFlags: ["logidlelimit:7200"] }), worker).idleLogMs, 3600_000);
    assert.equal(jobLimits(base, job({ buildFlags: ["logidlelimit:90"] }), worker).idleLogMs, 90_000);
    assert.equal(jobLimits(base, job({ buildFlags: ["buildtimeout:60"] }), worker).wallMs, 60_000);
    assert.equal(jobLimits(base, job({ buildFlags: ["buildtimeout:99999"] }), worker).wallMs, 3600_000);
    assert.equal(jobLimits(base, job({ buildFlags: ["logidlelimit:soon"] }), worker).idleLogMs, base.idleLogMs);
  });

  it("should raise memory and disk to what constraints ask, within what the worker announced", () => {
    const l = jobLimits(
      DEFAULT_LIMITS,
      job({ constraints: { prjconf: [], recipe: ["hardware:memory:size unit=G 6", "hardware:disk:size unit=G 100"] } }),
      worker
    );
    assert.equal(l.memoryBytes, 6 * 1024 * MiB);
    assert.equal(l.diskBytes, worker.diskMb * MiB);
    const small = jobLimits(
      DEFAULT_LIMITS,
      job({ constraints: { prjconf: [], recipe: ["hardware:memory:size unit=M 10"] } }),
      worker
    );
    assert.equal(small.memoryBytes, DEFAULT_LIMITS.memoryBytes);
  });
});
