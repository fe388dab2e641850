import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { cpuFlags } from "../../../actors/worker/worker-role.ts";
import { workerLimits } from "../../../cli/commands/run-commands.ts";
import { DEFAULT_LIMITS, resolveLimits } from "../../../sandbox/index.ts";

const V2 = "cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3";
const V3 = "avx avx2 bmi1 bmi2 f16c fma abm movbe xsave";
const V4 = "avx512f avx512bw avx512cd avx512dq avx512vl";

const cpuinfo = (flags: string): string =>
  [
    "processor\t: 0",
    "vendor_id\t: GenuineIntel",
    "model name\t: Some CPU @ 2.00GHz",
    `flags\t\t: fpu vme ${flags}`,
    "vmx flags\t: vnmi preemption_timer",
    "bugs\t\t: spectre_v1",
    "",
    "processor\t: 1",
    `flags\t\t: fpu vme ${flags}`,
    "",
  ].join("\n");

describe("worker options", () => {
  describe("cpuFlags", () => {
    it("should list the first cpu's flags, not the vmx flags or bugs", () => {
      assert.deepEqual(cpuFlags(cpuinfo("sse2 sse3")), ["fpu", "vme", "sse2", "sse3"]);
    });

    it("should add each x86-64 level the flags reach, and none past the first one missed", () => {
      assert.deepEqual(cpuFlags(cpuinfo(V2)).slice(-1), ["x86-64-v2"]);
      assert.deepEqual(cpuFlags(cpuinfo(`${V2} ${V3}`)).slice(-2), ["x86-64-v2", "x86-64-v3"]);
      assert.deepEqual(cpuFlags(cpuinfo(`${V2} ${V3} ${V4}`)).slice(-3), ["x86-64-v2", "x86-64-v3", "x86-64-v4"]);
      // All of v3 and v4 but one flag of v2: no level at all (the levels build on each other).
      const noV2 = cpuFlags(cpuinfo(`${V2.replace("popcnt", "")} ${V3} ${V4}`));
      assert.ok(!noV2.some((f) => f.startsWith("x86-64-")), noV2.join(" "));
      const v2NotV3 = cpuFlags(cpuinfo(`${V2} ${V3.replace("avx2", "")} ${V4}`));
      assert.deepEqual(
        v2NotV3.filter((f) => f.startsWith("x86-64-")),
        ["x86-64-v2"]
      );
    });

    it("should give nothing for a cpuinfo without flags (aarch64 says Features)", () => {
      assert.deepEqual(cpuFlags("processor\t: 0\nFeatures\t: fp asimd evtstrm\n"), []);
      assert.deepEqual(cpuFlags(""), []);
      assert.deepEqual(cpuFlags("flags\t\t:\n"), []);
    });

    it("should read this host's flags as they are", () => {
      const text = readFileSync("/proc/cpuinfo", "utf8");
      const line = text.split("\n").find((l) => l.startsWith("flags"));
      const flags = cpuFlags(text);
      if (line)
        assert.ok(
          line
            .split(":")[1]!
            .trim()
            .split(/\s+/)
            .every((f) => flags.includes(f))
        );
      else assert.deepEqual(flags, []);
    });
  });

  describe("workerLimits", () => {
    it("should map each --limit name to its sandbox limit, the last of a name winning", () => {
      assert.deepEqual(
        workerLimits(["wall=6h", "idle=30m", "log=512M", "memory=8G", "disk=100G", "pids=2048", "wall=2h"]),
        {
          wallMs: "2h",
          idleLogMs: "30m",
          logBytes: "512M",
          memoryBytes: "8G",
          diskBytes: "100G",
          pids: "2048",
        }
      );
      assert.deepEqual(workerLimits([]), {});
    });

    it("should give values the sandbox resolves to the limits it runs with", () => {
      const l = resolveLimits(workerLimits(["wall=6h", "memory=8G", "pids=2048"]));
      assert.equal(l.wallMs, 6 * 3600 * 1000);
      assert.equal(l.memoryBytes, 8 * 1024 ** 3);
      assert.equal(l.pids, 2048);
      assert.equal(l.logBytes, DEFAULT_LIMITS.logBytes);
    });

    it("should refuse unknown names and entries without a name", () => {
      for (const bad of [
        "cpu=4",
        "wall",
        "=4h",
        "Wall=4h",
        "wallMs=1000",
        "constructor=1",
        "__proto__=1",
        "toString=2",
      ]) {
        assert.throws(
          () => workerLimits([bad]),
          /--limit '.*': use name=value with name one of wall, idle, log, memory, disk, pids/,
          bad
        );
      }
    });
  });
});
