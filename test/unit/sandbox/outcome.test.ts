import assert from "node:assert/strict";
import { DEFAULT_LIMITS, describeResult } from "../../../sandbox/index.ts";
import type { SandboxLimits, SandboxResult, SandboxStats } from "../../../sandbox/index.ts";

const stats: SandboxStats = { startedAt: 0, endedAt: 1, wallMs: 1, outputBytes: 0, diskFull: false };
const limits: SandboxLimits = {
  ...DEFAULT_LIMITS,
  wallMs: 3_600_000,
  idleLogMs: 600_000,
  logBytes: 10_485_760,
  memoryBytes: 1_073_741_824,
  diskBytes: 2_147_483_648,
  pids: 500,
};

describe("sandbox/outcome", () => {
  it("should word every way a run can end as one clear line", () => {
    const cases: [SandboxResult, string, Record<string, unknown>][] = [
      [
        { type: "sandbox.exited", code: 1, files: [], collectOk: true, stats },
        "rpmbuild exited with 1",
        { exitCode: 1 },
      ],
      [
        { type: "sandbox.exited", code: 1, files: [], collectOk: true, stats: { ...stats, diskFull: true } },
        "disk limit of 2147483648 bytes reached (rpmbuild exited with 1)",
        { exitCode: 1 },
      ],
      [{ type: "sandbox.timedOut", limit: "wall", signal: "SIGTERM", stats }, "killed: wall time 3600 s exceeded", {}],
      [{ type: "sandbox.timedOut", limit: "idle", signal: "SIGKILL", stats }, "killed: no output for 600 s", {}],
      [{ type: "sandbox.killed", reason: "aborted", signal: "SIGKILL", stats }, "killed: aborted", {}],
      [
        { type: "sandbox.killed", reason: "logLimit", signal: "SIGTERM", stats },
        "killed: log exceeded 10485760 bytes",
        {},
      ],
      [
        { type: "sandbox.killed", reason: "memory", signal: "SIGKILL", stats },
        "killed: memory limit (1073741824 bytes)",
        {},
      ],
      [{ type: "sandbox.killed", reason: "pids", signal: "SIGKILL", stats }, "killed: process limit (500)", {}],
      [
        { type: "sandbox.killed", reason: "disk", signal: "SIGTERM", stats },
        "killed: disk limit (2147483648 bytes)",
        {},
      ],
      [
        { type: "sandbox.unpackFailed", code: 2, stats },
        "unpacking the dependency packages failed (exit 2)",
        { exitCode: 2 },
      ],
    ];
    for (const [result, reason, extra] of cases) {
      const d = describeResult(result, limits, "rpmbuild");
      assert.equal(d.reason, reason);
      if ("exitCode" in extra) assert.equal(d.exitCode, extra.exitCode);
      if (result.type === "sandbox.killed" || result.type === "sandbox.timedOut") assert.equal(d.signal, result.signal);
      assert.ok(!d.reason.includes("\n"));
    }
  });
});
